package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// loadPublicKey reads a PEM public key or certificate.
func loadPublicKey(path string) (pubKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return pubKey{}, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return pubKey{}, errors.New("no PEM block found")
	}
	id := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return pubKey{}, fmt.Errorf("parse public key: %w", err)
		}
		return pubKey{id: id, key: k}, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return pubKey{}, fmt.Errorf("parse RSA public key: %w", err)
		}
		return pubKey{id: id, key: k}, nil
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return pubKey{}, fmt.Errorf("parse certificate: %w", err)
		}
		return pubKey{id: id, key: c.PublicKey}, nil
	default:
		return pubKey{}, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
	}
}
