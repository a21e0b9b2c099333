package meta

// ValidName checks a container or tenant name: [a-z0-9][a-z0-9-]{0,31}.
func ValidName(s string) error { return validName(s) }
