package cli

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// openImageFile decodes the signed image in data, read from path. When
// data is not one, the error says what it is instead and what to do:
// a manifest must be packed first (or run with --insecure, by run), other
// files are named as corrupt. All its errors are usage errors.
func openImageFile(path string, data []byte, manifestHint string) (*trust.Image, error) {
	img, err := trust.OpenImage(data)
	if err == nil {
		return img, nil
	}
	if looksLikeText(data) {
		if _, perr := meta.Parse(data); perr == nil {
			return nil, usagef("%s is a manifest, not a signed image: %s", path, manifestHint)
		}
		return nil, usagef("%s is a text file, not a signed image (images are binary files made by `tinycontainer pack`)", path)
	}
	return nil, usagef("%s is not a valid signed image (corrupt, truncated, or not made by `tinycontainer pack`): %v", path, err)
}

// packHint tells how to make an image of the manifest at path.
func packHint(path string) string {
	img := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + ".img"
	return fmt.Sprintf("pack it into one first: tinycontainer pack --manifest %s --key TENANT.key -o %s", path, img)
}

// looksLikeText reports whether data reads as text (a manifest), not as a
// signed image, which starts with a CBOR tag byte and holds binary code.
func looksLikeText(data []byte) bool {
	head := data[:min(len(data), 4096)]
	for cut := 0; cut < utf8.UTFMax && len(head) > 0 && !utf8.Valid(head); cut++ {
		head = head[:len(head)-1] // a rune cut at the end of the window
	}
	return len(bytes.TrimSpace(head)) > 0 && utf8.Valid(head) && bytes.IndexByte(head, 0) < 0 && data[0] != 0xd2
}
