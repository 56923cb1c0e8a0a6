package cutfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node that records what is not yet durable.
type node struct {
	gofs.LoopbackNode
	fs *FS
}

var (
	_ gofs.NodeCreater        = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeMkdirer        = (*node)(nil)
	_ gofs.NodeMknoder        = (*node)(nil)
	_ gofs.NodeUnlinker       = (*node)(nil)
	_ gofs.NodeRmdirer        = (*node)(nil)
	_ gofs.NodeRenamer        = (*node)(nil)
	_ gofs.NodeSetattrer      = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeCopyFileRanger = (*node)(nil)
	_ gofs.NodeTmpfiler       = (*node)(nil)
	_ gofs.NodeWrapChilder    = (*node)(nil)
)

// WrapChild makes every child the loopback creates (lookups, creates,
// mkdirs, links) a node of this file system too.
func (n *node) WrapChild(_ context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	lb, ok := ops.(*gofs.LoopbackNode)
	if !ok {
		return ops
	}
	return &node{LoopbackNode: gofs.LoopbackNode{RootData: lb.RootData}, fs: n.fs}
}

// rel is the node's path relative to the backing root.
func (n *node) rel() string { return n.Path(nil) }

// backing is the node's path in the backing directory.
func (n *node) backing() string { return filepath.Join(n.RootData.Path, n.rel()) }

// created records that name was created in n; f.mu is held.
func (n *node) created(name string) {
	p := filepath.Join(n.backing(), name)
	n.fs.names = append(n.fs.names, &nameOp{
		dirs: []string{n.rel()},
		undo: func() error { return os.RemoveAll(p) },
	})
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ch, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	n.created(name)
	return ch, n.fs.wrap(fh), fuseFlags, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.fs.wrap(fh), fuseFlags, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.created(name)
	}
	return ch, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, dev, out)
	if errno == 0 {
		n.created(name)
	}
	return ch, errno
}

// remove moves name aside instead of removing it, so that a cut before the
// directory is fsynced can bring it back.
func (n *node) remove(name string) syscall.Errno {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	p := filepath.Join(n.backing(), name)
	t, err := n.fs.toTrash(p)
	if err != nil {
		return gofs.ToErrno(err)
	}
	n.fs.names = append(n.fs.names, &nameOp{
		dirs:   []string{n.rel()},
		undo:   func() error { return os.Rename(t, p) },
		forget: func() { os.RemoveAll(t) },
	})
	return 0
}

func (n *node) Unlink(_ context.Context, name string) syscall.Errno { return n.remove(name) }

func (n *node) Rmdir(_ context.Context, name string) syscall.Errno {
	entries, err := os.ReadDir(filepath.Join(n.backing(), name))
	switch {
	case err != nil:
		return gofs.ToErrno(err)
	case len(entries) > 0:
		return syscall.ENOTEMPTY
	}
	return n.remove(name)
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || flags != 0 {
		return syscall.ENOTSUP // exchange and no-replace renames are not modelled
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	from := filepath.Join(n.backing(), name)
	to := filepath.Join(np.backing(), newName)
	if _, err := os.Lstat(from); err != nil {
		return gofs.ToErrno(err)
	}
	displaced := ""
	if _, err := os.Lstat(to); err == nil {
		if displaced, err = n.fs.toTrash(to); err != nil {
			return gofs.ToErrno(err)
		}
	}
	if err := os.Rename(from, to); err != nil {
		if displaced != "" {
			os.Rename(displaced, to)
		}
		return gofs.ToErrno(err)
	}
	op := &nameOp{
		dirs: []string{n.rel()},
		undo: func() error {
			if err := os.Rename(to, from); err != nil {
				return err
			}
			if displaced != "" {
				return os.Rename(displaced, to)
			}
			return nil
		},
	}
	if displaced != "" {
		op.forget = func() { os.RemoveAll(displaced) }
	}
	if np.rel() != n.rel() {
		op.dirs = append(op.dirs, np.rel())
	}
	n.fs.names = append(n.fs.names, op)
	return 0
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var inner gofs.FileHandle
	if h, ok := f.(*handle); ok {
		inner = h.lf
	}
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(inner, int64(size)); errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	return n.LoopbackNode.Setattr(ctx, inner, in, out)
}

// truncate changes the file's size through its handle lf, or by path when
// lf is nil, recording what it drops.
func (n *node) truncate(lf gofs.FileHandle, size int64) syscall.Errno {
	var fd int
	if lf == nil {
		file, err := os.OpenFile(n.backing(), os.O_RDWR, 0)
		if err != nil {
			return gofs.ToErrno(err)
		}
		defer file.Close()
		fd = int(file.Fd())
	} else {
		var ok bool
		if fd, ok = lf.(gofs.FilePassthroughFder).PassthroughFd(); !ok {
			return syscall.EBADF
		}
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	if errno := n.fs.record(fd, size, 0, true); errno != 0 {
		return errno
	}
	return gofs.ToErrno(syscall.Ftruncate(fd, size))
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ds, errno := gofs.NewLoopbackDirStream(n.backing())
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{DirStream: ds, node: n}, 0, 0
}

func (n *node) CopyFileRange(context.Context, gofs.FileHandle, uint64, *gofs.Inode, gofs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.ENOTSUP
}

// dirHandle is an open directory; its fsync makes the directory's
// namespace changes durable.
type dirHandle struct {
	gofs.DirStream
	node *node
}

var (
	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer   = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
)

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.DirStream.(gofs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.DirStream.(gofs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	d.DirStream.(gofs.FileReleasedirer).Releasedir(ctx, flags)
}

func (d *dirHandle) Fsyncdir(context.Context, uint32) syscall.Errno {
	d.node.fs.mu.Lock()
	defer d.node.fs.mu.Unlock()
	d.node.fs.dirSynced(d.node.rel())
	return 0
}

// handle is an open file whose writes are recorded until it is fsynced.
type handle struct {
	lf gofs.FileHandle // a *gofs.LoopbackFile
	fs *FS
}

var (
	_ gofs.FileReader    = (*handle)(nil)
	_ gofs.FileWriter    = (*handle)(nil)
	_ gofs.FileFsyncer   = (*handle)(nil)
	_ gofs.FileFlusher   = (*handle)(nil)
	_ gofs.FileReleaser  = (*handle)(nil)
	_ gofs.FileGetattrer = (*handle)(nil)
	_ gofs.FileLseeker   = (*handle)(nil)
)

func (f *FS) wrap(fh gofs.FileHandle) gofs.FileHandle { return &handle{lf: fh, fs: f} }

func (h *handle) fd() (int, syscall.Errno) {
	fd, ok := h.lf.(gofs.FilePassthroughFder).PassthroughFd()
	if !ok {
		return 0, syscall.EBADF
	}
	return fd, 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	fd, errno := h.fd()
	if errno != 0 {
		return 0, errno
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if errno := h.fs.record(fd, off, int64(len(data)), false); errno != 0 {
		return 0, errno
	}
	return h.lf.(gofs.FileWriter).Write(ctx, data, off)
}

func (h *handle) Fsync(context.Context, uint32) syscall.Errno {
	fd, errno := h.fd()
	if errno != 0 {
		return errno
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.fs.synced(fd)
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.lf.(gofs.FileReader).Read(ctx, dest, off)
}

func (h *handle) Flush(ctx context.Context) syscall.Errno {
	return h.lf.(gofs.FileFlusher).Flush(ctx)
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	return h.lf.(gofs.FileReleaser).Release(ctx)
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.(gofs.FileGetattrer).Getattr(ctx, out)
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.lf.(gofs.FileLseeker).Lseek(ctx, off, whence)
}
