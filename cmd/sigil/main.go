// Command sigil is Sigil's one binary: the coordinator (`sigil server`), an
// MPC signer (`sigil signer`), an HSM driver (`sigil hsm-driver`), the
// all-in-one `sigil dev`, and the operator and client commands. This package
// only wires flags to the packages that do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &cliEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// commands lists every subcommand; multi-word names ("token create") are
// matched against the leading arguments.
func commands() []*command {
	return []*command{
		serverCommand(),
		devCommand(),
		benchMPCCommand(),
		benchHSMCommand(),
		walletCreateCommand(),
		walletGetCommand(),
		walletListCommand(),
		signCommand(),
		signerCommand(),
		signerInitCommand(),
		signerJournalVerifyCommand(),
		signerJournalListCommand(),
		hsmDriverJournalVerifyCommand(),
		hsmDriverJournalListCommand(),
		requestKeyInitCommand(),
		recoverCommand(),
		tokenCreateCommand(),
		tokenListCommand(),
		tokenRevokeCommand(),
		pkiInitCommand(),
		pkiIssueCommand(),
		versionCommand(),
		hsmDriverCommand(),
		hsmInitMasterKeyCommand(),
		hsmImportMasterKeyCommand(),
		hsmGenerateMasterKeyCommand(),
		hsmInitAttestationKeyCommand(),
		hsmAttestationKeyCommand(),
		hsmBackupKeysCommand(),
	}
}

// run executes one command line and returns the exit code: 0 success, 1
// failure, 2 usage error.
func run(ctx context.Context, args []string, env *cliEnv) int {
	env.ctx = ctx
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		printCommands(env.stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, rest := findCommand(cmds, args)
	if c == nil {
		fmt.Fprintf(env.stderr, "sigil: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		printCommands(env.stderr, cmds)
		return 2
	}
	fs := flag.NewFlagSet("sigil "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runFn := c.flags(fs, env)
	if err := parse(fs, rest, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(env.stdout, c, fs)
			return 0
		}
		fmt.Fprintf(env.stderr, "sigil %s: %v\n(run `sigil %s --help` for the flags)\n", c.name, err, c.name)
		return 2
	}
	if err := runFn(); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return 0
		}
		fmt.Fprintf(env.stderr, "sigil %s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func findCommand(cmds []*command, args []string) (*command, []string) {
	var best *command
	var rest []string
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(args) < len(words) {
			continue
		}
		match := true
		for i, w := range words {
			if args[i] != w {
				match = false
				break
			}
		}
		if match && (best == nil || len(words) > len(strings.Fields(best.name))) {
			best, rest = c, args[len(words):]
		}
	}
	return best, rest
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func versionCommand() *command {
	return &command{
		name: "version", summary: "print the version",
		usage: "Prints Sigil's version.",
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			return func() error {
				fmt.Fprintln(env.stdout, "sigil", version)
				return nil
			}
		},
	}
}
