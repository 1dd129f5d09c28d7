package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// command is one `sigil` subcommand.
type command struct {
	name    string
	summary string
	// usage is the text --help prints above the flags.
	usage string
	// flags declares the command's flags on fs and returns the function
	// that runs it once they are parsed.
	flags func(fs *flag.FlagSet, env *cliEnv) func() error
}

// cliEnv is what every command gets: its output streams and a logger
// builder. Nothing global: tests run commands in-process.
type cliEnv struct {
	ctx            context.Context
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string

	logLevel  string
	logFormat string
}

// logger builds the logger the --log-level and --log-format flags ask for.
// Logs go to stderr; stdout is for results.
func (e *cliEnv) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(e.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", e.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch e.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", e.logFormat)
	}
}

// addLogFlags declares --log-level and --log-format.
func (e *cliEnv) addLogFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&e.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
}

// errUsage marks errors that are the caller's mistake: exit code 2.
var errUsage = errors.New("usage")

// parse parses args into fs, then fills every flag not given on the command
// line from the environment (SIGIL_<FLAG>, dashes as underscores) and then
// from the --config file. Flags beat environment beats file beats defaults.
func parse(fs *flag.FlagSet, args []string, env *cliEnv) error {
	var configPath string
	if fs.Lookup("config") == nil {
		fs.StringVar(&configPath, "config", "", "optional YAML file of flag values (keys are flag names); SIGIL_CONFIG also names it")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	warnSecretsOnCommandLine(fs, set, env.stderr)
	if !set["config"] {
		configPath = env.getenv("SIGIL_CONFIG")
	}
	var file map[string]any
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("--config %s: %w", configPath, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("--config %s: unknown key %q (keys are flag names of this command)", configPath, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		key := "SIGIL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env.getenv(key); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := setFromFile(f, v); err != nil {
				errs = append(errs, fmt.Errorf("--config key %q: %w", f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// warnSecretsOnCommandLine warns when a flag given on the command line
// carries a password: any local user can read command lines with ps.
func warnSecretsOnCommandLine(fs *flag.FlagSet, set map[string]bool, w io.Writer) {
	f := fs.Lookup("database-url")
	if f == nil || !set[f.Name] {
		return
	}
	u, err := url.Parse(f.Value.String())
	if err != nil || u.User == nil {
		return
	}
	if _, has := u.User.Password(); has {
		fmt.Fprintln(w, "sigil: warning: --database-url on the command line holds a password, which any local user can read with ps; "+
			"set SIGIL_DATABASE_URL, put database-url in a --config file (mode 0600), or use a PostgreSQL password file (PGPASSFILE, ~/.pgpass) instead")
	}
}

func setFromFile(f *flag.Flag, v any) error {
	switch v := v.(type) {
	case []any:
		for _, item := range v {
			if err := f.Value.Set(fmt.Sprint(item)); err != nil {
				return err
			}
		}
		return nil
	case nil:
		return nil
	default:
		return f.Value.Set(fmt.Sprint(v))
	}
}

// listFlag is a flag that may be repeated or given comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// printUsage writes a command's help.
func printUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: sigil %s [flags]\n\n%s\n\nFlags (each also settable as SIGIL_<FLAG> in the environment, or in --config):\n", c.name, strings.TrimSpace(c.usage))
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n      %s", f.Name, kind, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func printCommands(w io.Writer, cmds []*command) {
	fmt.Fprint(w, `sigil: self-hosted wallet signing (MPC signers or a PKCS#11 HSM) behind one API.

Usage: sigil <command> [flags]    (sigil <command> --help for its flags)

Commands:
`)
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-24s %s\n", c.name, c.summary)
	}
}
