package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// owner is a uid and gid; gid -1 leaves groups as they are.
type owner struct{ uid, gid int }

func (o owner) String() string {
	if o.gid < 0 {
		return fmt.Sprint(o.uid)
	}
	return fmt.Sprintf("%d:%d", o.uid, o.gid)
}

// maxOwnerErrors bounds the errors a failed chownTree reports.
const maxOwnerErrors = 3

// chownTree gives dir and everything under it to o, never following a
// symbolic link: links are changed themselves, and nothing outside dir is
// touched, even when a directory in it is swapped for a link meanwhile
// (the walk goes through an os.Root). With clearSetID it also clears the
// setuid and setgid bits of everything that is not a directory or a link,
// so that a container cannot leave a setuid program on the host. A dir
// that does not exist holds nothing to change.
func chownTree(dir string, o owner, clearSetID bool) error {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	var errs []error
	failed := 0
	fail := func(err error) {
		if failed++; failed <= maxOwnerErrors {
			errs = append(errs, err)
		}
	}
	walkErr := fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			fail(err)
			return nil
		}
		info, err := root.Lstat(path)
		if err != nil {
			fail(err)
			return nil
		}
		uid, gid, ok := fileOwner(info)
		if !ok {
			return nil
		}
		if uid != o.uid || (o.gid >= 0 && gid != o.gid) {
			if err := root.Lchown(path, o.uid, o.gid); err != nil {
				fail(err)
				return nil
			}
		}
		mode := info.Mode()
		if clearSetID && !mode.IsDir() && mode&fs.ModeSymlink == 0 && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			// Chmod follows links, but this is no link, and the root keeps
			// it inside dir anyway.
			if err := root.Chmod(path, mode&(fs.ModePerm|fs.ModeSticky)); err != nil {
				fail(err)
			}
		}
		return nil
	})
	if walkErr != nil {
		fail(walkErr)
	}
	if failed > maxOwnerErrors {
		errs = append(errs, fmt.Errorf("and %d more", failed-maxOwnerErrors))
	}
	return errors.Join(errs...)
}
