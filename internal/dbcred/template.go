package dbcred

import (
	"fmt"
	"strings"
)

// Placeholders a statement template may use. Each is replaced by a quoted
// value of the right kind for the database: {{name}} (alias {{username}})
// by a quoted identifier, {{password}} and {{expiration}} by quoted string
// literals. Templates write them bare; Coffer adds the quotes. For
// templates written for Vault, a placeholder that is the whole content of a
// quoted token ('{{password}}', "{{name}}") is accepted as if bare. A
// placeholder anywhere else inside quotes or a comment is refused when the
// role is written, so no value is ever spliced into SQL unquoted.
const (
	phName       = "name"
	phPassword   = "password"
	phExpiration = "expiration"
)

// TemplateError reports a statement template that cannot be used.
type TemplateError struct {
	Field string // creation_statements, revocation_statements, renew_statements
	Msg   string
}

func (e *TemplateError) Error() string { return e.Field + ": " + e.Msg }

// part is a piece of a statement: literal SQL, or a placeholder.
type part struct {
	sql         string
	placeholder string // "" for literal SQL
}

// statement is one SQL statement of a template.
type statement []part

// parseTemplates splits templates (each may hold several statements
// separated by ";") into statements, finding placeholders. allowed lists
// the placeholders this kind of template may use.
func parseTemplates(d dialect, field string, templates []string, allowed ...string) ([]statement, error) {
	var out []statement
	for _, t := range templates {
		sts, err := parseTemplate(d, t)
		if err != nil {
			return nil, &TemplateError{Field: field, Msg: err.Error()}
		}
		for _, st := range sts {
			for _, p := range st {
				if p.placeholder != "" && !contains(allowed, p.placeholder) {
					return nil, &TemplateError{Field: field, Msg: fmt.Sprintf("{{%s}} cannot be used here (allowed: %s)", p.placeholder, braces(allowed))}
				}
			}
		}
		out = append(out, sts...)
	}
	return out, nil
}

func braces(names []string) string {
	var b []string
	for _, n := range names {
		b = append(b, "{{"+n+"}}")
	}
	return strings.Join(b, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseTemplate scans one template with the dialect's lexical rules:
// string literals, quoted identifiers, dollar quotes (PostgreSQL),
// backticks and backslash escapes (MySQL), and comments.
func parseTemplate(d dialect, src string) ([]statement, error) {
	var (
		out []statement
		cur statement
		lit strings.Builder
	)
	flushLit := func() {
		if lit.Len() > 0 {
			cur = append(cur, part{sql: lit.String()})
			lit.Reset()
		}
	}
	endStatement := func() {
		flushLit()
		if strings.TrimSpace(render0(cur)) != "" || hasPlaceholder(cur) {
			out = append(out, cur)
		}
		cur = nil
	}
	mysql := d.name() == PluginMySQL
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ';':
			endStatement()
			i++
		case strings.HasPrefix(src[i:], "{{"):
			name, n, err := placeholderAt(src[i:])
			if err != nil {
				return nil, err
			}
			flushLit()
			cur = append(cur, part{placeholder: name})
			i += n
		case c == '\'' || c == '"' || (c == '`' && mysql):
			end, err := quotedEnd(src, i, c, mysql && c != '`')
			if err != nil {
				return nil, err
			}
			tok := src[i:end]
			inner := tok[1 : len(tok)-1]
			if strings.Contains(inner, "{{") {
				name, n, err := placeholderAt(inner)
				if err != nil || n != len(inner) {
					return nil, fmt.Errorf("placeholder inside quotes in %s: write placeholders bare, e.g. PASSWORD {{password}}; Coffer quotes them", tok)
				}
				flushLit()
				cur = append(cur, part{placeholder: name})
			} else {
				lit.WriteString(tok)
			}
			i = end
		case c == '$' && !mysql:
			tag, ok := dollarTag(src[i:])
			if !ok {
				lit.WriteByte(c)
				i++
				continue
			}
			j := strings.Index(src[i+len(tag):], tag)
			if j < 0 {
				return nil, fmt.Errorf("unterminated dollar-quoted string %s", tag)
			}
			end := i + len(tag) + j + len(tag)
			if strings.Contains(src[i:end], "{{") {
				return nil, fmt.Errorf("placeholder inside a dollar-quoted body: placeholders must be bare SQL")
			}
			lit.WriteString(src[i:end])
			i = end
		case strings.HasPrefix(src[i:], "--") || (c == '#' && mysql):
			j := strings.IndexByte(src[i:], '\n')
			end := len(src)
			if j >= 0 {
				end = i + j
			}
			if strings.Contains(src[i:end], "{{") {
				return nil, fmt.Errorf("placeholder inside a comment")
			}
			i = end
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("unterminated /* comment")
			}
			end := i + 2 + j + 2
			if strings.Contains(src[i:end], "{{") {
				return nil, fmt.Errorf("placeholder inside a comment")
			}
			lit.WriteByte(' ')
			i = end
		default:
			lit.WriteByte(c)
			i++
		}
	}
	endStatement()
	return out, nil
}

// placeholderAt reads "{{ name }}" at the start of s and returns the
// canonical name and its length.
func placeholderAt(s string) (string, int, error) {
	end := strings.Index(s, "}}")
	if end < 0 {
		return "", 0, fmt.Errorf("unterminated placeholder %.20q", s)
	}
	name := strings.TrimSpace(s[2:end])
	switch name {
	case "name", "username":
		return phName, end + 2, nil
	case phPassword, phExpiration:
		return name, end + 2, nil
	}
	return "", 0, fmt.Errorf("unknown placeholder {{%s}} (known: {{name}}, {{username}}, {{password}}, {{expiration}})", truncate(name, 32))
}

// quotedEnd returns the index after the quoted token starting at src[i].
// A doubled quote stays inside; with backslash, a backslash escapes the
// next byte (MySQL's default string syntax).
func quotedEnd(src string, i int, q byte, backslash bool) (int, error) {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(src) && src[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated quoted text starting %.20q", src[i:])
}

// dollarTag returns the $tag$ opening a PostgreSQL dollar-quoted string at
// the start of s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1], true
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (j > 1 && c >= '0' && c <= '9')) {
			return "", false
		}
	}
	return "", false
}

func hasPlaceholder(st statement) bool {
	for _, p := range st {
		if p.placeholder != "" {
			return true
		}
	}
	return false
}

// render0 is the statement's literal SQL alone, to tell empty statements.
func render0(st statement) string {
	var b strings.Builder
	for _, p := range st {
		b.WriteString(p.sql)
	}
	return b.String()
}

// values are what placeholders are replaced with, unquoted.
type values struct {
	name, password, expiration string
}

// render fills the statements' placeholders with quoted values.
func render(d dialect, sts []statement, v values) ([]string, error) {
	out := make([]string, 0, len(sts))
	for _, st := range sts {
		var b strings.Builder
		for _, p := range st {
			var (
				q   string
				err error
			)
			switch p.placeholder {
			case "":
				b.WriteString(p.sql)
				continue
			case phName:
				q, err = d.quoteIdent(v.name)
			case phPassword:
				q, err = d.quoteLiteral(v.password)
			case phExpiration:
				q, err = d.quoteLiteral(v.expiration)
			}
			if err != nil {
				return nil, err
			}
			b.WriteString(q) // self-delimiting: it starts and ends with a quote
		}
		out = append(out, strings.TrimSpace(b.String()))
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
