package device

import "github.com/tinycontainer/tinycontainer/runtime"

// SetCompileHook makes every compile of d call f before it starts (nil:
// none). Tests only.
func SetCompileHook(d *Device, f func(kind runtime.Kind, code []byte)) {
	if f == nil {
		d.mods.hook.Store(nil)
		return
	}
	d.mods.hook.Store(&f)
}
