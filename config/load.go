package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// DefaultFile is the YAML file Load reads when no --config flag is given,
// relative to the working directory, if it exists.
const DefaultFile = "config/ssehub.yaml"

// flagKey ties a command-line flag to the key it sets.
type flagKey struct{ flag, key, usage string }

// flagKeys returns every flag that sets a key.
func flagKeys() []flagKey {
	return []flagKey{
		{"addr", "server.addr", "listen address, host:port"},
		{"log-level", "log.level", "log level: debug, info, warn or error"},
		{"log-format", "log.format", "log format: text or json"},
	}
}

// Load builds the configuration from the built-in defaults, then the YAML
// file, then the environment, then flags, each layer overriding the one
// before, and returns it validated.
//
// args are the command-line arguments after the program name (and after a
// subcommand, if any). The YAML file is the one named by --config PATH;
// without that flag it is DefaultFile when it exists, else none; an empty
// --config "" wraps ErrUsage. getenv looks up environment variables:
// os.Getenv in production; nil means no environment. Every key has a
// variable named by EnvName; its value is trimmed (envValue), an empty
// value does not override, one wrapped in quotes is refused (quoted) for
// a key the configuration uses, and lists are comma-separated and replace
// the file's list.
//
// Errors name the key and the offending value, and the variable or flag
// that set it, or the file. -h or --help returns a *HelpError (wrapping
// pflag.ErrHelp) that holds the usage text.
// Load may be called from several goroutines at once.
func Load(args []string, getenv func(string) string) (Config, error) {
	return LoadContext(context.Background(), args, getenv)
}

// AsksHelp reports whether Load, given args, would return a *HelpError:
// they ask for the help, with no problem before it. It reads nothing else.
func AsksHelp(args []string) bool {
	return errors.Is(newFlagSet(Default()).Parse(args), pflag.ErrHelp)
}

// LoadContext is Load, stopped when ctx is done while it waits for its
// file: a FIFO that nothing writes to, where a signal went unheeded. The
// error then wraps ErrConfigFile and holds context.Cause(ctx).
func LoadContext(ctx context.Context, args []string, getenv func(string) string) (Config, error) {
	def := Default()
	flags := newFlagSet(def)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return Config{}, &HelpError{Usage: usage(flags)}
		}
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if flags.NArg() > 0 {
		if arg := flags.Arg(0); arg == "healthcheck" || arg == "token" {
			return Config{}, fmt.Errorf("%w: unexpected argument %q: the subcommand %s comes first: ssehub %s [flags]", ErrUsage, arg, arg, arg)
		}
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrUsage, flags.Arg(0))
	}

	v := viper.New()
	path, err := configPath(flags)
	if err != nil {
		return Config{}, err
	}
	// fileErrs are the file's problems, kept until the configuration
	// says which keys are used.
	var fileErrs []error
	// written is the text the file wrote for the keys it gives a number
	// or a bool (see writtenScalars).
	var written map[string]string
	// lines are the lines at which the file writes its keys.
	var lines map[string]int
	if path != "" {
		if written, lines, fileErrs, err = readFile(ctx, v, path); err != nil {
			return Config{}, err
		}
	}
	// sources names the variable or flag each key was set by, for errors.
	sources := map[string]string{}
	// errs are the variables' and flags' problems, reported, as the
	// file's, only for keys the configuration uses.
	var errs []error
	// A variable of a key a flag sets is not read, nor checked: the flag
	// overrides it.
	flagged := map[string]bool{}
	for _, f := range flagKeys() {
		flagged[f.key] = flags.Changed(f.flag)
	}
	if getenv != nil {
		for _, key := range Keys() {
			if flagged[key] {
				continue
			}
			s := envValue(key, getenv(EnvName(key)))
			if quoted(s) {
				errs = append(errs, &KeyError{Key: key, Source: EnvName(key), Err: ErrInvalidValue, Msg: "the value is wrapped in quotes, which a variable keeps as part of it " +
					"(docker run --env-file does not remove them): remove them (value not shown)"})
				continue
			}
			if s != "" {
				v.Set(key, s)
				sources[key] = EnvName(key)
			}
		}
	}
	for _, f := range flagKeys() {
		if flagged[f.key] {
			s, _ := flags.GetString(f.flag)
			v.Set(f.key, s)
			sources[f.key] = "--" + f.flag
		}
	}

	cfg := def
	for _, f := range cfg.fields() {
		raw := v.Get(f.key)
		if s, ok := written[f.key]; ok && sources[f.key] == "" {
			raw = s
		}
		if err := decode(f.key, f.target, raw); err != nil {
			errs = append(errs, err)
		}
	}
	// A key left unused is unchecked, the type of its value too, how
	// the file wrote it, and quotes around its variable's value; so is
	// how the file wrote a value a variable or a flag overrides.
	fileErrs = slices.DeleteFunc(fileErrs, func(err error) bool {
		var ke *KeyError
		return errors.As(err, &ke) && errors.Is(ke.Err, ErrInvalidValue) && sources[strings.Split(ke.Key, "[")[0]] != ""
	})
	if err := errors.Join(cfg.used(fileErrs)...); err != nil {
		return Config{}, nameFile(err, path, nil, lines)
	}
	// inFile reports whether the file sets key: its errors name the
	// file, as the file's other errors do.
	inFile := func(key string) bool { return path != "" && sources[key] == "" && v.InConfig(key) }
	if err := errors.Join(cfg.used(errs)...); err != nil {
		nameSources(err, sources)
		return Config{}, nameFile(err, path, inFile, lines)
	}
	if err := cfg.validate(ctx); err != nil {
		nameSources(err, sources)
		return Config{}, nameFile(err, path, inFile, lines)
	}
	return cfg, nil
}

// nameFile returns err, one of Load's errors, with each of the errors
// joined in it whose key, or another key the problem names, the file at
// path set (inFile; nil for all of them, the file's own problems) after
// `config file "PATH": `, as an error of a value a
// variable or a flag set names it: stream.retry: 0.0x was refused without
// a word of the file where hub.history_size: 1e3 named it, and of two
// unknown keys the second did not name it. An error of a key the file
// set, other than one written twice (which names both lines), names the
// line at which lines, keyLines', say the file writes it, or its list
// item: "line 42: stream.retry: ...", as a syntax error names its line.
// One whose key the file did not set (a variable did, or its default
// stands) names the line of the first other key it names that the file
// set, and that key: "line 7 (stream.max_streams): hub.max_subscribers:
// ...".
func nameFile(err error, path string, inFile func(key string) bool, lines map[string]int) error {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	named := make([]error, len(errs))
	for i, e := range errs {
		named[i] = e
		var ke *KeyError
		// A key's error that names a variable or a flag (ke.Source) is
		// theirs, though the file sets the key too: a variable refused
		// for its quotes sets nothing.
		isKey := errors.As(e, &ke)
		if inFile != nil && !(isKey && (ke.Source == "" && inFile(strings.Split(ke.Key, "[")[0]) || slices.ContainsFunc(ke.Others, inFile))) {
			continue
		}
		where := ""
		switch {
		case !isKey || errors.Is(ke.Err, ErrDuplicateKey):
		case ke.Source == "" && (inFile == nil || inFile(strings.Split(ke.Key, "[")[0])):
			line, ok := lines[ke.at]
			if !ok {
				line, ok = lines[ke.Key]
			}
			if !ok {
				line, ok = lines[strings.Split(ke.Key, "[")[0]]
			}
			if ok {
				where = fmt.Sprintf("line %d: ", line)
			}
		default:
			// The file's part is another key the problem names: its
			// line, and its name, as the line is not the key's.
			for _, o := range ke.Others {
				if line, ok := lines[o]; ok && inFile != nil && inFile(o) {
					where = fmt.Sprintf("line %d (%s): ", line, o)
					break
				}
			}
		}
		named[i] = fmt.Errorf("%w %q: %s%w", ErrConfigFile, path, where, e)
	}
	return errors.Join(named...)
}

// envValue returns s, the value of key's environment variable (or, for
// decode, of the file), without the white space around it: an environment
// has no quotes to say where a value ends, and `SSEHUB_STREAM_TRANSPORT=' detached'` was refused while
// `SSEHUB_STREAM_RETRY=' 3s'` was read as 3s and each item of a list was
// trimmed. So a value of white space alone counts as unset, as an empty
// one does. auth.jwt.hmac_secret is taken as it is: a secret's bytes are
// the key, and trimming them would refuse the tokens signed with it.
func envValue(key, s string) string {
	if key == "auth.jwt.hmac_secret" {
		return s
	}
	return strings.TrimSpace(s)
}

// quoted reports whether s, a variable's value as envValue takes it, is
// wrapped in a pair of double or single quotes: a shell or a compose file
// would have removed them, so they were written where they are kept, in
// an env file for docker run for one, and would be taken as part of the
// value.
func quoted(s string) bool {
	s = strings.TrimSpace(s)
	return len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0]
}

// newFlagSet returns the flags Load understands, showing def's values as
// their defaults. It prints nothing: Load returns errors and usage instead.
func newFlagSet(def Config) *pflag.FlagSet {
	flags := pflag.NewFlagSet("ssehub", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	flags.SortFlags = false
	flags.Var(&configFlag{}, "config", "YAML config file (default "+DefaultFile+" when it exists)")
	values := map[string]string{"server.addr": def.Server.Addr, "log.level": def.Log.Level, "log.format": def.Log.Format}
	for _, f := range flagKeys() {
		// No pflag default: the help would give the built-in value as
		// the flag's, where the variable's or the file's is the one
		// left in effect without the flag. A flag is read only when
		// given (Changed).
		flags.String(f.flag, "", fmt.Sprintf("%s (%s; left out: %s, else the file's, else the built-in %q)", f.usage, f.key, EnvName(f.key), values[f.key]))
	}
	return flags
}

// usage returns the help text for flags.
func usage(flags *pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	b.WriteString("  ssehub [flags]              serve\n")
	b.WriteString("  ssehub healthcheck [flags]  ask the server at server.addr for /healthz: exit 0 when healthy\n")
	b.WriteString("  ssehub token [flags]        print a JWT for development (ssehub token -h)\n")
	b.WriteString("\nFlags, for all three (token has more of its own):\n")
	b.WriteString(flags.FlagUsages())
	b.WriteString("\nSettings are read from built-in defaults, then the YAML file, then the\n")
	b.WriteString("environment, then flags. Every key has a variable: SSEHUB_ and the key in\n")
	b.WriteString("upper snake case (server.addr is SSEHUB_SERVER_ADDR); lists are\n")
	b.WriteString("comma-separated. " + DefaultFile + " documents every key.\n")
	return b.String()
}

// configFlag is the --config flag: the paths it was given, in order, so
// that a second --config, which pflag would take over the first without a
// word, is refused.
type configFlag struct{ paths []string }

func (f *configFlag) String() string {
	if len(f.paths) == 0 {
		return ""
	}
	return f.paths[len(f.paths)-1]
}

func (f *configFlag) Set(path string) error {
	f.paths = append(f.paths, path)
	return nil
}

func (f *configFlag) Type() string { return "string" }

// configPath returns the YAML file to read, or "" for none: without
// --config, DefaultFile when its name is there, a link to nothing included.
// A --config given twice is refused: one file is read, and a user who
// wrote two (--config base.yaml --config prod.yaml, as docker compose -f
// merges files) would run without the first, its tokens among its keys.
//
// An empty --config is refused, as an empty --addr is: it is most often a
// script's --config "$CFG" with CFG unset, and taking it for "no file"
// started the server on built-in defaults even beside DefaultFile, without
// a word. An empty file (/dev/null) says "defaults only" on purpose.
func configPath(flags *pflag.FlagSet) (string, error) {
	if flags.Changed("config") {
		paths := flags.Lookup("config").Value.(*configFlag).paths
		if len(paths) > 1 {
			quoted := make([]string, len(paths))
			for i, p := range paths {
				quoted[i] = strconv.Quote(p)
			}
			return "", fmt.Errorf("%w: --config given %d times (%s): ssehub reads one file, and would ignore all but the last; merge them into one", ErrUsage, len(paths), strings.Join(quoted, ", "))
		}
		if paths[0] == "" {
			return "", fmt.Errorf("%w: --config %q: empty path (without --config, %s is read when it exists; /dev/null, an empty file, means the built-in defaults)", ErrUsage, paths[0], DefaultFile)
		}
		return paths[0], nil
	}
	// Lstat: a link there whose target is missing (a mount or a secret
	// that is not there) is a file meant to be read, not none; reading
	// it says what is wrong.
	_, err := os.Lstat(DefaultFile)
	switch {
	case err == nil:
		return DefaultFile, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	default:
		return "", fmt.Errorf("%w %q: %w", ErrConfigFile, DefaultFile, err)
	}
}

// used returns errs without the invalid values of keys c leaves unused
// (see Config.unused). An unknown key, or one written twice, is kept.
func (c Config) used(errs []error) []error {
	var kept []error
	for _, err := range errs {
		var ke *KeyError
		if errors.As(err, &ke) && errors.Is(ke.Err, ErrInvalidValue) && c.unused(strings.Split(ke.Key, "[")[0]) {
			continue
		}
		kept = append(kept, err)
	}
	return kept
}

// readFile reads the YAML file at path into v. It returns an error, which
// names the file, for a file it cannot read or parse, or one of several
// YAML documents; problems, each a *KeyError, for keys ssehub does not
// know, keys written twice in two spellings and values written in a way
// ssehub refuses, for Load to report once it knows which keys are used;
// and the text written for values YAML reads as numbers or bools
// (writtenScalars).
func readFile(ctx context.Context, v *viper.Viper, path string) (written map[string]string, lines map[string]int, problems []error, err error) {
	data, err := readConfigFile(ctx, path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = missingTarget(path, pe.Err) // the path is already in the message: "is a directory", not "read PATH: is a directory"
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w %q: %w", ErrConfigFile, path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, nil, nil, fmt.Errorf("%w %q: longer than %d MiB, far more than a configuration holds: not the file meant? (a device such as /dev/zero never ends)", ErrConfigFile, path, maxConfigBytes>>20)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		if line := complexKeyLine(data); line > 0 {
			// The library's error prints the key, and names line 1.
			return nil, nil, nil, fmt.Errorf("%w %q: line %d: a key written as a list or a mapping: a key is a name, such as addr: (value not shown, as it may be a token or a secret)", ErrConfigFile, path, line)
		}
		if m := notAMapping.FindStringSubmatch(err.Error()); m != nil && yamlKinds[m[2]] != "" {
			return nil, nil, nil, fmt.Errorf("%w %q: line %s: %s, not a mapping of sections and keys (server:, cors:, ...)", ErrConfigFile, path, m[1], yamlKinds[m[2]])
		}
		return nil, nil, nil, fmt.Errorf("%w %q: %s", ErrConfigFile, path, yamlProblem(data, err))
	}
	if err := checkOneDocument(data); err != nil {
		return nil, nil, nil, fmt.Errorf("%w %q: %s", ErrConfigFile, path, yamlProblem(data, err))
	}
	for _, err := range []error{checkSpellings(data), checkKeys(v), checkYAMLScalars(data)} {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			problems = append(problems, joined.Unwrap()...)
		} else if err != nil {
			problems = append(problems, err)
		}
	}
	return writtenScalars(data), keyLines(data), problems, nil
}

// complexKeyLine returns the line of the first key of the YAML file data
// written as a list or a mapping (? [a] or {a: b}: ), or 0 when there is
// none or the file does not parse. Such a key is no name a configuration
// has, most likely a token or a secret written where its key belongs, and
// the library's error for it ("invalid map key: []interface {}{...}")
// prints it.
func complexKeyLine(data []byte) int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return 0
	}
	line := 0
	var walk func(*yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i]; k.Kind != yaml.ScalarNode && k.Kind != yaml.AliasNode || k.Kind == yaml.AliasNode && k.Alias != nil && k.Alias.Kind != yaml.ScalarNode {
					line = k.Line
					return true
				}
			}
		}
		return slices.ContainsFunc(n.Content, walk)
	}
	walk(&doc)
	return line
}

// maxConfigBytes bounds the YAML file: one that never ends (--config
// /dev/zero, /dev/urandom, a typo for /dev/null) was read until the
// process ran out of memory.
const maxConfigBytes = 4 << 20

// notAMapping matches the error of a file whose document is not a mapping
// (a list, a text): viper's, which names the Go type it wanted.
var notAMapping = regexp.MustCompile(`line (\d+): cannot unmarshal !!(\w+) (?:.* )?into map\[string\]interface \{\}`)

// yamlKinds names the YAML tags notAMapping finds, for its message.
var yamlKinds = map[string]string{
	"seq": "the file is a list", "str": "the file is a text", "int": "the file is a number",
	"float": "the file is a number", "bool": "the file is a bool", "binary": "the file is binary data",
	"timestamp": "the file is a date",
}

// yamlProblem returns err, a YAML error of the file data (as viper or the
// YAML library returns it), as "line N: problem", N counted from 1, and a
// hint when the problem's words do not say its cause. Viper's "While
// parsing config: " and the library's "yaml: " are left out, and so is
// the library's miscount: a parser error (not a scanner's) names the line
// before the one it means. A key written twice in one spelling, which
// the library calls a mapping key "already defined", is said so. Any other
// error is returned as it is.
func yamlProblem(data []byte, err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			msgs[i] = e
			if m := duplicateKey.FindStringSubmatch(e); m != nil {
				key := m[2]
				line, _ := strconv.Atoi(m[1])
				// Under its section, which shownKey judges names by:
				// under auth, where secrets are, more strictly.
				if _, ok := shownKey(keyPathAt(data, line, m[3])); !ok {
					key = "a key, its name not shown as it does not look like one,"
				}
				msgs[i] = fmt.Sprintf("line %s: %s written twice (first at line %s): YAML takes a key once; keep one", m[1], key, m[4])
			}
		}
		return strings.Join(msgs, "; ")
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u // viper's ConfigParseError, around the library's error
	}
	msg, ok := strings.CutPrefix(err.Error(), "yaml: ")
	if !ok {
		return err.Error()
	}
	n := 1 // the library names no line on the first
	m := errorLine.FindStringSubmatch(msg)
	if m != nil {
		n, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if slices.Contains(parserProblems, msg) {
			n++
		}
	}
	if m == nil || slices.Contains(startLineProblems, msg) {
		// Without a line, the problem may be on the first, or on one
		// the library does not say: a reader's (a control character, a
		// byte that is not UTF-8) or an alias to an unknown anchor,
		// which were all "line 1".
		n = problemLine(data, n, msg)
	}
	if m := tagMismatchProblem.FindStringSubmatch(msg); m != nil {
		// The library quotes the value, which may be a token or a
		// secret (hmac_secret: !!int SECRET), and names no line.
		n = taggedLine(data, m[3], m[2], n)
		msg = fmt.Sprintf("a value tagged %s that YAML does not read as one: drop the tag, or quote the value if it is text (value not shown, as it may be a token or a secret)", m[3])
	}
	if unknownAnchorProblem.MatchString(msg) {
		// The name is what follows the *: a token or a secret written
		// unquoted with a * first was quoted in the log.
		msg = "unknown anchor referenced (a value starting with * is a YAML alias: quote it if it is text; its name is not shown, as it may be a token or a secret)"
	}
	where := fmt.Sprintf("line %d", n)
	lines := yamlLines(data)
	if last := len(lines) - 1; last > 0 && lines[last] == "" {
		lines = lines[:last] // the file's last line break ends its last line
	}
	if n > len(lines) {
		// After the last line's newline: the file ended where more was due.
		where = fmt.Sprintf("line %d, the end of the file", len(lines))
	}
	return fmt.Sprintf("%s: %s%s", where, msg, yamlHint(data, n, msg))
}

// keyPathAt returns the dotted path (its sections, then key) of the key
// the YAML file data writes as key at line, or key alone when it finds
// none there.
func keyPathAt(data []byte, line int, key string) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return key
	}
	var walk func(n *yaml.Node, path string) (string, bool)
	walk = func(n *yaml.Node, path string) (string, bool) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Line == line && k.Value == key {
					return join(path, k.Value), true
				}
				if p, ok := walk(n.Content[i+1], join(path, k.Value)); ok {
					return p, true
				}
			}
			return "", false
		}
		for _, c := range n.Content {
			if p, ok := walk(c, path); ok {
				return p, true
			}
		}
		return "", false
	}
	if p, ok := walk(&doc, ""); ok {
		return p
	}
	return key
}

// startLineProblems are the YAML library's problems it names by the line
// where what holds the mistake starts: a block mapping or sequence, a plain
// scalar (a tab indenting the line after level: info) or a block scalar.
var startLineProblems = []string{
	"did not find expected key", "did not find expected '-' indicator",
	"found a tab character that violates indentation", "found a tab character where an indentation space is expected",
}

// problemLine returns the line of a problem msg of startLineProblems,
// which the YAML library names by the line where what holds it starts,
// n, or of one it names no line for (n is 1): the first line from n on at
// which the file, cut after it, fails with msg too. "   bad: x", indented one space too far under
// a section's keys, was "line 2" for the section's first key. The file
// cut before the mistake does not fail with msg, and cut after it does,
// so the line is found by halving, a few cuts read, not one for each line
// (10,000 lines of a list took a minute).
func problemLine(data []byte, n int, msg string) int {
	lines := yamlLines(data)
	fails := func(k int) bool {
		dec := yaml.NewDecoder(strings.NewReader(strings.Join(lines[:k], "")))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if err == nil {
				continue
			}
			return strings.HasSuffix(err.Error(), ": "+msg)
		}
	}
	if k := n + sort.Search(len(lines)-n+1, func(i int) bool { return fails(n + i) }); k <= len(lines) {
		return k
	}
	return n
}

// lineBreaks are the characters YAML ends a line with, and counts lines
// by: \r\n, \r or \n, and NEL, LS and PS. A file whose lines end in \r
// alone has lines to YAML, and its errors name them.
const lineBreaks = "\r\n\u0085\u2028\u2029"

// yamlLines returns the lines of data as YAML counts them, each with its
// line break, and what follows the last break ("" after a last break), as
// strings.SplitAfter does.
func yamlLines(data []byte) []string {
	s := string(data)
	var lines []string
	for {
		i := strings.IndexAny(s, lineBreaks)
		if i < 0 {
			return append(lines, s)
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		if strings.HasPrefix(s[i:], "\r\n") {
			size = 2
		}
		lines = append(lines, s[:i+size])
		s = s[i+size:]
	}
}

// duplicateKey matches the YAML library's message for a key written
// twice in one spelling.
var duplicateKey = regexp.MustCompile(`^line (\d+): mapping (key "(.*)") already defined at line (\d+)$`)

// unknownAnchorProblem matches the YAML library's problem for an alias to an
// anchor the file does not define, which names the alias.
var unknownAnchorProblem = regexp.MustCompile(`^unknown anchor '.*' referenced$`)

// tagMismatchProblem matches the YAML library's problem for a value tagged
// with a type it is not written as (!!int over text), which quotes the
// value.
var tagMismatchProblem = regexp.MustCompile("^cannot decode (!![^ ]+) `(?s:(.*))` as a (!![^ ]+)$")

// taggedLine returns the line of the YAML file data at which a scalar
// tagged tag holds value, or n if there is none.
func taggedLine(data []byte, tag, value string, n int) int {
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc) // a node tree is built without resolving tags
	line := n
	var walk func(*yaml.Node) bool
	walk = func(node *yaml.Node) bool {
		if node.Kind == yaml.ScalarNode && node.Tag == tag && node.Value == value {
			line = node.Line
			return true
		}
		return slices.ContainsFunc(node.Content, walk)
	}
	walk(&doc)
	return line
}

// errorLine matches the line a YAML error names, at its start.
var errorLine = regexp.MustCompile(`^line (\d+): `)

// parserProblems are the YAML library's parser problems, whose line it
// counts from 0 (its scanner's, from 1).
var parserProblems = []string{
	"did not find expected key", "did not find expected '-' indicator", "did not find expected node content",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected <document start>",
	"did not find expected <stream-start>", "found undefined tag handle", "found duplicate %YAML directive",
	"found duplicate %TAG directive", "found incompatible YAML document",
}

// valueStart matches the first * or & that starts a value: not one in a
// value (https://a.test/?a=1&b=2).
var valueStart = regexp.MustCompile(`(?:^|[\s\[{,])[*&]`)

// tagStart matches the first ! that starts a value.
var tagStart = regexp.MustCompile(`(?:^|[\s\[{,])!`)

// tagProblems are the YAML library's problems with a tag, which do not say
// that it is one.
var tagProblems = []string{
	"did not find expected whitespace or line break", "did not find the expected '>'",
	"found undefined tag handle", "did not find expected tag URI",
}

// yamlHint returns, for a YAML syntax error at line n (from 1) whose
// problem msg does not say its cause, the cause, in parentheses after a
// space; else "". An unquoted * (any origin, any header) is an alias to
// YAML, & and a symbol (a secret's) an anchor, ! and one a tag, a tab in an indentation a character that "cannot start any
// token", and quoted items without brackets ("a", "b") leave YAML
// expecting a key.
func yamlHint(data []byte, n int, msg string) string {
	lines := yamlLines(data)
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, lineBreaks)
	}
	if n < 1 || n > len(lines) {
		return ""
	}
	line := lines[n-1]
	switch {
	case strings.Contains(msg, "did not find expected alphabetic or numeric character") && strings.ContainsAny(line, "*&"):
		if strings.HasSuffix(valueStart.FindString(line), "&") {
			// A & and a symbol, no anchor's name: a secret's start.
			return ` (a value starting with & is a YAML anchor: quote it, as in "&...")`
		}
		return ` (a value starting with * is a YAML alias: quote it, as in "*")`
	case slices.Contains(tagProblems, msg) && strings.HasSuffix(tagStart.FindString(line), "!"):
		// A ! and what no tag holds: a secret's start.
		return ` (a value starting with ! is a YAML tag: quote it, as in "!...")`
	case strings.Contains(msg, "found character that cannot start any token") &&
		strings.Contains(line[:len(line)-len(strings.TrimLeft(line, " \t"))], "\t"):
		return " (YAML indents with spaces, not tabs)"
	case strings.Contains(msg, "did not find expected key"):
		// n is the line YAML stumbled at, most often the list's own.
		for i := n - 1; i < len(lines); i++ {
			if quotedList.MatchString(lines[i]) {
				where := ""
				if i+1 != n {
					where = fmt.Sprintf("line %d: ", i+1)
				}
				return fmt.Sprintf(` (%sa list on one line is written in brackets, as in ["a", "b"])`, where)
			}
		}
	}
	return ""
}

// quotedList matches a key whose value is quoted items separated by
// commas, without the brackets of a list.
var quotedList = regexp.MustCompile(`^\s*[^#\s"'][^:]*:\s*("[^"]*"|'[^']*')\s*,`)

// checkKeys reports every key in v's file that is not a known key. An
// empty section (`hub:` with nothing under it) is allowed.
func checkKeys(v *viper.Viper) error {
	known := Keys()
	secs := sections()
	var errs []error
	keys := v.AllKeys()
	slices.Sort(keys)
	seen := map[string]bool{}
	for _, key := range keys {
		if slices.Contains(known, key) {
			continue
		}
		if i := slices.IndexFunc(known, func(k string) bool { return strings.HasPrefix(key, k+".") }); i >= 0 {
			// A mapping where a value belongs: viper flattened it into subkeys.
			if k := known[i]; !seen[k] {
				seen[k] = true
				errs = append(errs, invalid(k, "expected a value, got a mapping"))
			}
			continue
		}
		if _, ok := secs[key]; ok {
			if raw := v.Get(key); raw != nil {
				got := fmt.Sprintf(", got %v", raw)
				if slices.ContainsFunc(secretKeys, func(k string) bool { return strings.HasPrefix(k, key+".") }) ||
					strings.HasPrefix("nats.url", key+".") {
					// Most likely a secret written without its key
					// (auth.jwt: SECRET), or a server URL, which may hold
					// a password or a token (nats: nats://user:password@host).
					got = " (value not shown)"
				}
				errs = append(errs, invalid(key, "expected a section of keys"+got))
			}
			continue
		}
		hint := "known sections: " + strings.Join(topSections(secs), ", ")
		if sec := sectionOf(key, secs); sec != "" {
			hint = "known keys in " + sec + ": " + strings.Join(secs[sec], ", ")
		}
		if shown, ok := shownKey(key); !ok {
			// Most likely a token or a secret written where its key
			// belongs: its line tells where, not its name.
			where := "an unknown key"
			if shown == "" {
				where += " at the top level"
			}
			errs = append(errs, &KeyError{Key: shown, at: key, Err: ErrUnknownKey, Msg: where + ", its name not shown: it does not look like a key's name, " +
				"and may be a token or a secret written where a key belongs (" + hint + ")"})
			continue
		}
		errs = append(errs, &KeyError{Key: key, Msg: "unknown key (" + hint + ")", Err: ErrUnknownKey})
	}
	return errors.Join(errs...)
}

// keyName reports whether part, a part of an unknown key as viper names
// it (in lower case), looks like a key's name, which an error may show: at
// most 32 bytes of letters and digits, words joined by _ or -, starting
// with a letter, with digits at most. A token or a secret (hex, base64)
// is most often longer, or has more digits.
func keyName(part string, digits int) bool {
	return len(part) <= 32 && namePart.MatchString(part) &&
		len(strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, part)) <= digits
}

// shownKey returns key, dotted, in lower case, and true when each of its
// parts looks like a key's name (keyName: 2 digits at most; under auth,
// whose keys hold the secrets, none, as none of its names has one, and a
// part must be a name of the configuration's, one misspelt or cut short,
// authWord: a passphrase is words of letters joined as a name's are);
// else the parts before the first that does not, and false.
func shownKey(key string) (string, bool) {
	parts := strings.Split(strings.ToLower(key), ".")
	for i, p := range parts {
		digits := 2
		underAuth := i > 0 && parts[0] == "auth"
		if underAuth {
			digits = 0
		}
		if !keyName(p, digits) || underAuth && !authWord(p) {
			return strings.Join(parts[:i], "."), false
		}
	}
	return strings.Join(parts, "."), true
}

// authWord reports whether part, a part of an unknown key under auth,
// is a part of a known key's name (of any section: a key put under the
// wrong one), one a typo away from it (fewer edits than half its length,
// maxTypoEdits at most), or words of it (hmac or secret for hmac_secret),
// _ and - alike.
func authWord(part string) bool {
	part = strings.ReplaceAll(part, "-", "_")
	for _, k := range Keys() {
		for name := range strings.SplitSeq(k, ".") {
			if n := edits(part, name); n <= maxTypoEdits && 2*n < len(name) || strings.Contains("_"+name+"_", "_"+part+"_") {
				return true
			}
		}
	}
	return false
}

// namePart matches the words of a key's name.
var namePart = regexp.MustCompile(`^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$`)

// topSections returns the top-level sections of secs, in order.
func topSections(secs map[string][]string) []string {
	var top []string
	for k := range secs {
		if !strings.Contains(k, ".") {
			top = append(top, k)
		}
	}
	slices.Sort(top)
	return top
}
