package instrument

// testModule is a module of sections (each made by testSection), in
// order, after the magic and version 1.
func testModule(sections ...[]byte) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

// testSection is section id of payload.
func testSection(id byte, payload ...byte) []byte { return appendSection(nil, id, payload) }
