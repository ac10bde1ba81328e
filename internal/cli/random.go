package cli

import (
	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// randomCommand is `coffer random`, like AWS GetRandomPassword.
func (e *env) randomCommand() *cobra.Command {
	var o client.RandomOptions
	cmd := &cobra.Command{
		Use:   "random",
		Short: "Print a random password from the server's generator",
		Long: `Print a random password: 32 characters by default, from lower and upper case
letters, digits and punctuation, each at least once. Needs read on sys/tools/random.

  coffer random --length 24 --no-punctuation
  coffer random --exclude-chars "'\"\\/@" --length 40`,
		Args: cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			pw, err := c.RandomPassword(cmd.Context(), o)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]string{"password": pw})
			}
			e.printf("%s\n", pw)
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.Length, "length", 0, "number of characters (default 32, at most 4096)")
	f.StringVar(&o.ExcludeCharacters, "exclude-chars", "", "characters never to use")
	f.BoolVar(&o.ExcludeLowercase, "no-lowercase", false, "no lower case letters")
	f.BoolVar(&o.ExcludeUppercase, "no-uppercase", false, "no upper case letters")
	f.BoolVar(&o.ExcludeNumbers, "no-numbers", false, "no digits")
	f.BoolVar(&o.ExcludePunctuation, "no-punctuation", false, "no punctuation")
	f.BoolVar(&o.IncludeSpace, "include-space", false, "allow the space character")
	f.BoolVar(&o.AnyClass, "any-class", false, "do not require each included class to appear")
	return cmd
}
