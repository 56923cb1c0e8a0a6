package store

// SetStatfs makes a monitor started with o measure free space with fn
// instead of statfs(2).
func SetStatfs(o *SpaceOptions, fn func() (int64, error)) { o.statfs = fn }
