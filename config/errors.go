package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is one problem found in a configuration source.
type Error struct {
	// File is the path of the source as the system sees it ("/oem/90_firmware.yaml",
	// "/proc/cmdline", or a --config path as given).
	File string `json:"file"`
	// Line and Column are 1-based; 0 when the problem concerns the whole file (or, for YAML
	// syntax errors, when the parser gives no column).
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Key is the key path, like firmware.extensions[1].when[0].usb.
	Key string `json:"key,omitempty"`
	// Value is the offending scalar as written; empty for containers and file-level problems.
	Value string `json:"value,omitempty"`
	// Token is the kernel command line token the problem came from.
	Token string `json:"token,omitempty"`
	// Message says what is wrong and what is expected.
	Message string `json:"message"`
}

// maxShownValue bounds how much of a value Error() prints; the field keeps it whole.
const maxShownValue = 120

// Error formats the problem as `file:line:col: key: message (value "...", token "...")`.
// Parts that are unknown or empty are left out.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Message)
	var details []string
	if e.Value != "" {
		details = append(details, "value "+strconv.Quote(shorten(e.Value)))
	}
	if e.Token != "" {
		details = append(details, "token "+strconv.Quote(shorten(e.Token)))
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxShownValue {
		return s
	}
	runes := []rune(s)
	return string(runes[:maxShownValue]) + "..."
}
