// Package e2e holds end-to-end tests that run Herald in-process against
// real external programs: Debian's Chromium (headless, driven over the
// Chrome DevTools Protocol), nginx as a reverse proxy, Node for the browser
// client's unit tests, and redis-server. Each test skips when its program
// is missing, unless CI=true, when it fails instead.
//
// HERALD_ARTIFACTS names a directory for screenshots (default: the test's
// temporary directory, which is removed afterwards).
package e2e
