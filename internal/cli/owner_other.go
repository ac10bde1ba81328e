//go:build !unix

package cli

import (
	"io/fs"
	"os"
)

func ownedByMe(fs.FileInfo) bool { return true }

func privateDir(dir string) error { return os.MkdirAll(dir, 0o700) }
