package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestError(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	_, err := v.Verify("not.a.jwt")
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonMalformedToken {
		t.Fatalf("got %#v", err)
	}
	if !strings.HasPrefix(err.Error(), ReasonMalformedToken+": ") {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, jwt.ErrTokenMalformed) {
		t.Errorf("Unwrap does not reach jwt.ErrTokenMalformed: %v", err)
	}
	if got := (&Error{Reason: ReasonMissingToken}).Error(); got != ReasonMissingToken {
		t.Errorf("Error() without detail = %q", got)
	}
}
