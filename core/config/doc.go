// Package config loads lockmgr's configuration: which backend takes a lock,
// where backend plugins live and which checksums they must have, the mode
// of newly created lock files, and per-path rules that send some trees (an
// NFS mount, say) to a different backend than the rest.
//
// # Layers and precedence
//
// A value comes from the first of these that sets it:
//
//  1. the Backend option of LoadOptions (the CLI's --backend flag);
//  2. the environment variable LOCKMGR_BACKEND;
//  3. the user file, $XDG_CONFIG_HOME/lockmgr/config.toml, or
//     ~/.config/lockmgr/config.toml when XDG_CONFIG_HOME is unset;
//  4. the system file, /etc/lockmgr/config.toml;
//  5. the built-in default: backend "flock", lock_file_mode 0600, and no
//     plugin_dir, which leaves the plugin search path to the plugin host.
//
// A missing system or user file is not an error: lockmgr works with no
// configuration file at all. Config.Sources records which layer decided
// each key, so that "lockmgr config" can say why a value is what it is.
//
// # An explicit file replaces both files
//
// When --config (LoadOptions.ExplicitFile) or LOCKMGR_CONFIG names a file,
// that one file is read instead of both the system and the user file,
// rather than being stacked on top of them. An explicit file is how a test,
// a container or a service unit pins its configuration; if the other two
// files still applied underneath, a rule or a plugin pin from whichever
// account happens to run the command would leak into a run that asked for
// exactly one file. The environment and the flag still apply on top of it,
// as they do over the usual files. A missing explicit file is an error,
// because the caller asked for it by name.
//
// # One file, one mechanism
//
// Every lockmgr process on a host must lock a given file with the same
// backend, or two of them could both hold it: flock(2) and fcntl locks do
// not see each other. Two rules follow for this package. The variables
// "lockmgr run" sets for its command (OutputEnv) are never read here, so
// a run's own --backend cannot leak into a lockmgr its command starts.
// And a path rule applies to a directory, not to a spelling of it:
// BackendFor resolves symbolic links and compares directories by device
// and inode (see Config.BackendFor).
//
// # Merging
//
// A higher layer overrides the scalar keys (backend, plugin_dir,
// lock_file_mode) it sets. Rules are never overridden: all of them are
// kept, the user file's before the system file's, and the nearest
// (longest) matching directory wins, ties going to the earlier
// (higher-precedence) rule.
// The [plugins.NAME] and [backends.NAME] tables merge per NAME: the higher
// layer's table for a name replaces the lower layer's table for that name
// whole, so that a pinned checksum or a backend's settings are never a mix
// of two files.
//
// # Backend settings from the environment
//
// A variable LOCKMGR_NAME_KEY sets key "key" of backend "name"'s settings
// (LOCKMGR_ETCD_ENDPOINTS sets [backends.etcd] endpoints), one key at a
// time over the files' table, as a string the backend parses. Backends
// whose names contain "-" or "_", or begin lockmgr's own variables (plugin,
// lock, fencing, log, lifeline, config, backend), cannot be set this way.
//
// # Secrets
//
// "lockmgr config" prints a backend setting's value only when the key is
// declared safe to show (by this package for lockmgr's own backends, by
// [plugins.NAME] shown_settings for others), and hides URL user info even
// then: see Config.ShownSetting.
//
// # Errors
//
// Every problem in a file is an *Error that names the file and, where it
// can, the line: "/etc/lockmgr/config.toml:3: unknown key \"bakend\"".
// Unknown keys are errors rather than warnings because a misspelt key would
// otherwise leave the default in force without a word, and for a lock
// manager a silently wrong backend means locks that do not exclude each
// other.
//
// The TOML itself is parsed by github.com/pelletier/go-toml/v2, which also
// rejects duplicate keys and redefined tables. Line numbers for this
// package's own checks come from that module's unstable AST parser, which
// reads the document a second time and records where every key sits: the
// decoder gives positions only for what it rejects, and provenance needs
// the lines of what it accepts (positions.go says what else the strict
// decoder would lose).
package config
