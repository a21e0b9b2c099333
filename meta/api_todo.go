package meta

// API to implement (helper): see the helper brief.
//   func Parse(data []byte) (*Manifest, error)
//   func (m *Manifest) Validate() error
//   func Match(pattern, name string) bool
//   func (m *Manifest) Allowed(name string) abi.OpSet
//   Ceiling type + Parse/Permits
