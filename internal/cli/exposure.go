package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) exposureCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "exposure", Short: "Report and list leaked secret values (incident evidence)"}
	cmd.AddCommand(e.exposureReport(), e.exposureList())
	return cmd
}

func (e *env) exposureReport() *cobra.Command {
	var in client.ExposureInput
	cmd := &cobra.Command{
		Use:   "report NAME",
		Short: "Record that a secret's value was exposed (never send the value itself)",
		Example: `  coffer exposure report prod/payments/db --source repository \
      --location https://git.example/acme/app/commit/abc123 --note "found by gitleaks"`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			r, err := c.ReportExposure(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(r)
			}
			e.printf("Recorded exposure %s of %s (source %s). Rotate the secret now.\n", r.ID, r.Secret, r.Source)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Source, "source", "other", "where it was found: scanner, log, repository, chat, ticket or other")
	f.StringVar(&in.Location, "location", "", "where exactly (a commit URL, a log line reference)")
	f.StringVar(&in.Note, "note", "", "free text for the incident record")
	f.IntVar(&in.Version, "version", 0, "the version exposed, if known")
	return cmd
}

func (e *env) exposureList() *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "list [NAME]",
		Short: "List exposure reports of one secret, or of every secret under --prefix",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var reps []client.Exposure
			var err error
			if len(args) == 1 {
				reps, err = c.Exposures(cmd.Context(), args[0])
			} else {
				reps, err = c.AllExposures(cmd.Context(), prefix)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(reps)
			}
			if len(reps) == 0 {
				e.printf("No exposure reports.\n")
			}
			for _, r := range reps {
				line := fmtTime(r.ReportedAt) + "  " + r.Secret
				if r.Version > 0 {
					line += " v" + strconv.Itoa(r.Version)
				}
				line += "  " + r.Source + " by " + r.ReportedBy
				for _, extra := range []string{r.Location, r.Note} {
					if extra != "" {
						line += "  " + extra
					}
				}
				e.printf("%s\n", line)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "list reports of secrets under this prefix")
	return cmd
}
