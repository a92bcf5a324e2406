// Package kcmdline splits the kernel command line as the kernel does.
package kcmdline

import "unicode"

// Token is one parameter of the kernel command line.
type Token struct {
	Text   string // as written, quotes included
	Offset int    // byte offset in the command line
}

// Split splits the command line into parameters the way the kernel's next_arg() (lib/cmdline.c)
// does: at white space outside double quotes. Written here because callers need each token's
// byte offset (configuration errors name the column), which shell-word splitters do not give,
// and because the kernel's rule (double quotes only, no escapes) is what produced /proc/cmdline.
func Split(s string) []Token {
	var tokens []Token
	start, inQuote := -1, false
	for i, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			if start < 0 {
				start = i
			}
		case unicode.IsSpace(r) && !inQuote:
			if start >= 0 {
				tokens = append(tokens, Token{Text: s[start:i], Offset: start})
				start = -1
			}
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		tokens = append(tokens, Token{Text: s[start:], Offset: start})
	}
	return tokens
}
