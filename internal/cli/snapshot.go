package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Back up storage to a file, or restore a backup into a fresh server"}
	save := &cobra.Command{
		Use:   "save FILE",
		Short: "Write a consistent, checksummed backup (values stay encrypted; restoring needs the unseal keys)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			f, err := os.CreateTemp(filepath.Dir(args[0]), ".snapshot-*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			if err := c.Snapshot(cmd.Context(), f); err != nil {
				f.Close()
				return err
			}
			if err := f.Chmod(0o600); err != nil {
				f.Close()
				return err
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Rename(f.Name(), args[0]); err != nil {
				return err
			}
			st, _ := os.Stat(args[0])
			if !e.json {
				e.printf("Saved %s (%d bytes)\n", args[0], st.Size())
			}
			return nil
		}),
	}
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Load a backup into a fresh, uninitialized server; then unseal it with the backup's keys",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			st, err := c.RestoreSnapshot(cmd.Context(), data)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(st)
			}
			if !st.Sealed {
				e.printf("Restored and unsealed from the key file.\n")
				return nil
			}
			e.printf("Restored. The server is sealed: unseal it with the unseal keys of the server the snapshot came from.\n")
			fmt.Fprintln(e.stderr, "(with a key-file seal, put that server's key file in place and restart)")
			return nil
		}),
	}
	cmd.AddCommand(save, restore)
	return cmd
}
