// Package browsertest holds the dashboard's tests in a real browser:
// Debian's chromium, driven headless through chromedp. It has no code of
// its own; its tests skip when chromium is missing, unless
// TC_REQUIRE_CHROMIUM=1 (as in CI).
package browsertest
