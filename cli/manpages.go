//go:build mangen

package main

// What the man pages say beyond --help: the sections of each page that
// the command tree has no place for. Texts follow the help's plain-text
// conventions (manroff.go's roffText): blank lines between paragraphs,
// lines indented by two spaces shown as they are.

// manExtra is one page's own sections.
type manExtra struct {
	// synopsis replaces the usage line when a command has several forms.
	synopsis []string
	// before come after DESCRIPTION, after the rest of OPTIONS.
	before []manSection
	// exits is the EXIT STATUS section.
	exits []manDef
	// after come after EXIT STATUS: ENVIRONMENT, FILES, NOTES...
	after []manSection
	// examples are added to the command's own.
	examples string
}

// Exit statuses, as each command means them (cli/exitcodes.go).
var (
	exitUsageDef    = manDef{"64", "Usage error: an unknown option, a bad value, a missing argument; also a request the backend cannot serve, such as a byte range with flock, or a descriptor with posix."}
	exitNoInputDef  = manDef{"66", "The lock file cannot be opened or created: a missing directory, no permission, a read-only file system, a symbolic link; or the descriptor given is not open."}
	exitUnavailDef  = manDef{"69", "The backend is unavailable: no plugin of that name, a plugin refused (unsafe permissions, sha256 mismatch), a failed handshake, a plugin that died, or a lock service (etcd) out of reach."}
	exitSoftwareDef = manDef{"70", "Internal error. It should not happen; please report it."}
	exitConfigDef   = manDef{"78", "Configuration error: a configuration file that cannot be read or is invalid, a bad LOCKMGR_BACKEND, or settings or credentials a backend refuses."}
	exitSignalDef   = manDef{"128+N", "lockmgr was ended by signal N while it waited for the lock; it ends itself by that signal, which a shell reports as 128+N."}
)

// Environment variables, for the pages that read them.
var (
	envConfigDef  = manDef{"LOCKMGR_CONFIG", "One configuration file to read instead of the system and user files, as --config does."}
	envBackendDef = manDef{"LOCKMGR_BACKEND", "The backend, over the backend key of the configuration files. A [[rules]] entry that covers the lock file still wins over it; only --backend wins over a rule. lockmgr run passes it to its command as it got it."}
	envPluginDef  = manDef{"LOCKMGR_PLUGIN_DIR", "A directory searched for backend plugins before the configured plugin_dir and lockmgr's own directories."}
	envLogDef     = manDef{"LOCKMGR_LOG", "debug or trace: log what lockmgr and its plugins do, on standard error. Unset, they are silent."}
	envSettingDef = manDef{"LOCKMGR_NAME_KEY", "Setting key of backend NAME's [backends.NAME] table, over the configuration files: LOCKMGR_ETCD_ENDPOINTS, say (see lockmgr-etcd(5))."}
	envXDGDef     = manDef{"XDG_CONFIG_HOME, HOME", "Where the user's configuration file is: $XDG_CONFIG_HOME/lockmgr/config.toml, else ~/.config/lockmgr/config.toml."}
	envRuntimeDef = manDef{"XDG_RUNTIME_DIR, TMPDIR", "Where a plugin's socket is made for the moment the plugin takes to start: the first of $XDG_RUNTIME_DIR, $TMPDIR, /tmp and /dev/shm that only root or the user can change and that is writable, so that a read-only /tmp is no obstacle."}
	envShellDef   = manDef{"SHELL", "The shell that runs -c COMMAND-LINE; /bin/sh when unset."}
)

// lockEnvSection is the environment of the commands that lock.
var lockEnvSection = manSection{title: "ENVIRONMENT", defs: []manDef{envBackendDef, envConfigDef, envPluginDef, envSettingDef, envLogDef, envXDGDef, envRuntimeDef}}

// Files, for the pages that read them.
var (
	filesConfigDef = manDef{"/etc/lockmgr/config.toml", "The system configuration (lockmgr.toml(5)). lockmgr reads it whatever its own installation prefix."}
	filesUserDef   = manDef{"~/.config/lockmgr/config.toml", "The user's configuration, over the system's."}
	filesPluginDef = manDef{"/usr/lib/lockmgr/lockmgr-backend-NAME", "The backend plugins. lockmgr also looks in its own directory and in ../lib/lockmgr beside itself, so an installation under another prefix finds its own."}
	filesFullDef   = manDef{"/usr/lib/lockmgr/lockmgr-full", "lockmgr built whole, which lockmgr runs in its own place for a lock that needs a private plugin (posix, lock --fd, shared_plugin_idle = \"0s\"): lockmgr itself links no go-plugin, and starts faster for it. It is looked for only in lockmgr's own directory and in ../lib/lockmgr beside it."}
	filesLockDef   = manDef{"/run/lock", "Where lock files of system jobs go: in memory, emptied at boot. Writable by everyone on Debian and Ubuntu, by root only on Arch Linux and Fedora."}
)

var lockFiles = manSection{title: "FILES", defs: []manDef{filesConfigDef, filesUserDef, filesPluginDef, filesFullDef, filesLockDef}}

// manExtras are the pages' own sections, by page name.
var manExtras = map[string]manExtra{
	"lockmgr": {
		synopsis: []string{
			"lockmgr run [OPTIONS] FILE -- COMMAND [ARG...]",
			"lockmgr run [OPTIONS] FILE -c COMMAND-LINE",
			"lockmgr lock [OPTIONS] --fd N",
			"lockmgr unlock --fd N",
			"lockmgr status [--json] FILE...",
			"lockmgr backends | config | version",
			"flock [OPTIONS] FILE|DIRECTORY COMMAND [ARG...]",
			"flock [OPTIONS] N",
		},
		before: []manSection{
			{title: "THE FLOCK NAME", text: `Run under the name flock (through a symbolic link named flock that comes
before util-linux's /usr/bin/flock on PATH), lockmgr takes flock(1)'s
command line and answers as flock(1) does: the same options (-s, -x, -u,
-n, -w, -E, -o, -c, -F, --fcntl, --start, --length, --verbose), the same
messages and the same exit statuses (below), so that a script written for
flock(1) runs unchanged. The lock goes through the backend that lockmgr's
configuration chooses for the file. Two things differ by design: a
symbolic link as lock file is refused, and a new lock file is made with
mode 0600 less the umask (lock_file_mode), not 0666.

No package installs the link, since util-linux owns /usr/bin/flock. Where
the link goes decides which programs find it, since each finds flock on
its own PATH:

  login shells of one user:  ~/.local/lib/lockmgr-flock/flock, that
                             directory first on PATH in ~/.profile
  one systemd service:       /usr/local/lib/lockmgr-flock/flock, with
                             Environment=PATH=/usr/local/lib/lockmgr-flock:...
                             in a drop-in (systemctl edit UNIT)
  the whole host:            /usr/local/bin/flock

A link in /usr/local/bin reaches login shells and systemd services (whose
default PATH lists /usr/local/bin before /usr/bin), and sudo where its
secure_path lists /usr/local/bin (Debian's and Ubuntu's do, Fedora's
does not), but not cron jobs: cron runs them with PATH=/usr/bin:/bin and
reads no profile. For cron, put the link's directory first in a PATH
line at the top of the crontab (PATH=/usr/local/bin:/usr/bin:/bin; cron
expands no variables there), or call lockmgr run in the job. A script
that runs /usr/bin/flock by its full path always gets util-linux's.

A [[rules]] entry that puts a directory on the posix backend changes the
file forms (flock FILE COMMAND, flock FILE -c LINE) of every flock(1)
script under it to POSIX locks. It cannot change the descriptor form
(exec 9>FILE; flock 9): a POSIX lock belongs to the process that takes
it, and would end when flock exits, so under such a rule that form is
refused (exit 64), and the message names the rule. On Linux, flock(2) on
an NFS mount is already sent to the server as a POSIX lock on the whole
file (since Linux 2.6.12, unless the mount has local_lock=flock or
local_lock=all), so other clients see flock(1)'s locks there without any
rule; what a posix rule adds is byte ranges, and locks that stay
consistent with programs that take POSIX locks on the same file.`},
		},
		exits: []manDef{
			{"0", "Success."},
			{"N", "lockmgr run: the command ran and exited with status N."},
			{"1", "The lock is held by someone else, or --timeout passed (-E changes it); for status, some FILE is held."},
			exitUsageDef, exitNoInputDef, exitUnavailDef, exitSoftwareDef,
			{"75", "lockmgr run: the lock was lost while the command ran, and the command was stopped for it (--on-lost)."},
			exitConfigDef,
			{"126", "lockmgr run: the command exists but cannot be executed."},
			{"127", "lockmgr run: the command was not found."},
			{"128+N", "The command was ended by signal N, or lockmgr was while it waited for the lock: lockmgr ends itself by signal N."},
			{"Under the flock name", "flock(1)'s: 1 (or -E) for a lock not taken, 64 usage, 65 a lock call refused (a descriptor the caller did not open), 66 a lock file that cannot be opened, 69 a command that cannot be run or a backend that cannot serve, 71 out of descriptors or memory, 73 a read-only or full file system, and 128+N for a command killed by signal N."},
		},
		after: []manSection{
			{title: "ENVIRONMENT", text: `lockmgr reads the variables below and never those it sets for the
command of lockmgr run (LOCKMGR_LOCK_FILE, LOCKMGR_LOCK_BACKEND,
LOCKMGR_FENCING_TOKEN; see lockmgr-run(1)).`, defs: []manDef{envBackendDef, envConfigDef, envPluginDef, envSettingDef, envLogDef, envXDGDef, envRuntimeDef, envShellDef}},
			{title: "FILES", defs: []manDef{filesConfigDef, filesUserDef, filesPluginDef, filesFullDef, filesLockDef,
				{"$XDG_RUNTIME_DIR", "Where a user's own lock files go: private, in memory, and removed at the end of the user's last session. Cron jobs and services do not have it set."}}},
			{title: "BACKENDS", text: `The backend is, highest first: --backend; a [[rules]] entry of the
configuration that covers the lock file; LOCKMGR_BACKEND; the backend
key of the user's file, then the system's; flock. 'lockmgr config' shows
which one applies, and where it came from.

  flock  flock(2) locks: what flock(1) takes, so the two exclude each other
  posix  fcntl(2) record locks: byte ranges; what NFS servers arbitrate
  ofd    open file description locks (Linux 3.15): byte ranges, owned
         by the open file, as flock's are
  etcd   a lock in an etcd cluster, shared by every host (lockmgr-etcd(5))
  auto   posix on NFS and CIFS, flock elsewhere, decided per lock file

flock and POSIX locks on one local file do not exclude each other: use
the backend of the other programs that lock the file.`},
		},
		examples: `  # A cron job that skips a run while the last one is still going:
  */5 * * * *  lockmgr run -n /run/lock/sync.lock -- /usr/local/bin/sync.sh

  # Hold a lock for the rest of a script:
  exec 9>/run/lock/job.lock
  lockmgr lock -n --fd 9 || exit 1

  # Who holds it?
  lockmgr status /run/lock/sync.lock`,
	},

	"lockmgr-run": {
		synopsis: []string{
			"lockmgr run [OPTIONS] FILE -- COMMAND [ARG...]",
			"lockmgr run [OPTIONS] FILE -c COMMAND-LINE",
			"lockmgr run [OPTIONS] --fd N COMMAND [ARG...]",
			"lockmgr run [-s|-x|-u] [-n|-w SECONDS] N",
		},
		before: []manSection{
			{title: "  How long the lock lasts", text: `As under flock(1), the lock lasts as long as the command: if lockmgr
itself is killed, the lock is held until the command, and every process
that inherited the lock from it, has exited. With flock and ofd the
command inherits the locked file itself, at the lowest descriptor number
the caller left free (every descriptor the caller passed stays as it
was), and a background process it starts keeps the lock until it exits.
With posix and etcd, whose lock lockmgr's backend plugin holds, the
command inherits a descriptor that keeps that lock alive. --close (-o)
makes the lock end with lockmgr instead, for a command that starts a
daemon which must not keep the lock.`},
			{title: "  Signals", text: `With flock and ofd, where the command holds the lock itself, lockmgr
handles no signal, as flock(1) does: SIGINT, SIGTERM, SIGHUP or SIGQUIT
ends lockmgr, and the command runs on, holding the lock. With posix and
etcd they are passed on to the command (SIGINT and SIGQUIT from the
terminal reach it directly, and are not sent twice), and the lock is
released only after the command has exited. A signal the caller ignores
(nohup's SIGHUP, a background job's SIGINT) stays ignored, in lockmgr and
in the command. If the command is killed by a signal, lockmgr releases
the lock and ends itself by the same signal, so that a shell loop stops
at ^C.`},
			{title: "  A lost lock", text: `A posix or etcd lock can be lost while the command runs: the plugin
died, or an etcd lease expired. The command then runs unguarded, and
lockmgr stops it as --on-lost says: term sends SIGTERM, then SIGKILL
after --grace; kill sends SIGKILL at once; ignore only warns. lockmgr then
exits 75. A flock or ofd lock cannot be lost while it is held.`},
			{title: "  Finding the command", text: `COMMAND is found as execvp(3) finds it, as flock(1) does: an empty entry
of $PATH is the current directory, with $PATH unset /bin:/usr/bin is
searched, and an executable file without a #! line is run by /bin/sh.`},
			{title: "  Seen by other tools", text: `lockmgr status FILE names the lockmgr run process as the holder, with
the command it runs. lslocks(8) starts from /proc/locks, whose PID column
is the process that took the lock. With flock and ofd that is lockmgr's
backend plugin, which handed the locked descriptor to lockmgr and exited:
lslocks from util-linux 2.38 and earlier, which reads only /proc/locks,
shows that dead pid, "(unknown)" as its command, and the mount point
with "..." as its path. Later versions also read /proc/PID/fdinfo: they
show the first live process that holds the locked descriptor (lockmgr
run, or the command once lockmgr is gone) with the file's path, and
lslocks -o +HOLDERS lists every one. With posix, both show the plugin,
which holds the lock while the command runs.`},
		},
		exits: []manDef{
			{"N", "The command ran and exited with status N."},
			{"1", "The lock is held by someone else, or --timeout passed (-E changes it). Nothing is printed unless -v is given."},
			exitUsageDef, exitNoInputDef, exitUnavailDef, exitSoftwareDef,
			{"75", "The lock was lost while the command ran, and the command was stopped for it (--on-lost)."},
			exitConfigDef,
			{"126", "The command exists but cannot be executed; the lock file was not touched."},
			{"127", "The command was not found; the lock file was not touched."},
			{"128+N", "The command was ended by signal N, or lockmgr was while it waited: lockmgr ends itself by signal N."},
		},
		after: []manSection{
			{title: "ENVIRONMENT", text: `The command gets, in its environment, LOCKMGR_LOCK_FILE (FILE's absolute
path, or the etcd lock's name), LOCKMGR_LOCK_BACKEND (the backend that
holds the lock) and, from backends that give one, LOCKMGR_FENCING_TOKEN
(a number that grows with every new holder). lockmgr never reads them.
lockmgr run reads:`, defs: []manDef{envBackendDef, envConfigDef, envShellDef, envPluginDef, envSettingDef, envLogDef, envRuntimeDef,
				{"PATH", "Where COMMAND is found, as execvp(3) finds it."}}},
			lockFiles,
		},
		examples: `  # flock(1)'s spellings work as they are:
  lockmgr run -n -E 0 /run/lock/sync.lock sync.sh

  # Lock the file on descriptor 9 around one command:
  exec 9>/run/lock/job.lock
  lockmgr run --fd 9 -- make install`,
	},

	"lockmgr-lock": {
		exits: []manDef{
			{"0", "The lock was taken, and stays with the descriptor."},
			{"1", "The lock is held by someone else, or --timeout passed (-E changes it)."},
			exitUsageDef,
			{"66", "Descriptor N is not open, or was not passed in by the caller."},
			exitUnavailDef, exitSoftwareDef, exitConfigDef, exitSignalDef,
		},
		after: []manSection{lockEnvSection, lockFiles},
	},
	"lockmgr-unlock": {
		exits: []manDef{
			{"0", "The lock held through N was released, or N held none."},
			exitUsageDef,
			{"66", "Descriptor N is not open, or was not passed in by the caller."},
			exitUnavailDef, exitSoftwareDef, exitConfigDef,
		},
		after: []manSection{lockEnvSection, lockFiles},
		examples: `  exec 9>/run/lock/job.lock
  lockmgr lock --fd 9
  # ... work under the lock ...
  lockmgr unlock --fd 9`,
	},
	"lockmgr-status": {
		exits: []manDef{
			{"0", "Every FILE is free."},
			{"1", "Some FILE is held."},
			exitUsageDef,
			{"66", "A FILE cannot be inspected: its directory does not exist, or it is a symbolic link."},
			{"69", "The --backend given cannot be used."},
			exitSoftwareDef, exitConfigDef,
		},
		after: []manSection{lockEnvSection, lockFiles, {title: "NOTES", text: `lslocks(8) lists the same kernel locks, but by the process that took
each one. For a flock or ofd lock taken by lockmgr run, that is the
backend plugin, which has exited: lslocks from util-linux 2.38 and
earlier shows its pid and "(unknown)"; later versions, which also read
/proc/PID/fdinfo, show lockmgr run or the command instead. See
lockmgr-run(1).`}},
		examples: `  $ lockmgr status /run/lock/sync.lock
  /run/lock/sync.lock: held
    holder: pid 4242 (lockmgr run), exclusive flock [running sync.sh (pid 4250)]`,
	},
	"lockmgr-backends": {
		exits: []manDef{
			{"0", "Every plugin found passed its checks."},
			exitUsageDef,
			{"69", "A plugin failed its checks, or none was found."},
			exitSoftwareDef, exitConfigDef,
		},
		after: []manSection{
			{title: "ENVIRONMENT", defs: []manDef{envPluginDef, envConfigDef, envSettingDef, envLogDef, envXDGDef, envRuntimeDef}},
			lockFiles,
		},
	},
	"lockmgr-config": {
		exits: []manDef{
			{"0", "The configuration is valid; it was printed."},
			exitUsageDef, exitSoftwareDef,
			{"78", "The configuration is invalid: the line is named, as file:line."},
		},
		after: []manSection{
			{title: "ENVIRONMENT", defs: []manDef{envBackendDef, envConfigDef, envPluginDef, envSettingDef, envXDGDef}},
			{title: "FILES", defs: []manDef{filesConfigDef, filesUserDef}},
		},
		examples: `  lockmgr config              # what applies, and where it came from
  lockmgr config --json | jq .backend`,
	},
	"lockmgr-version": {
		exits: []manDef{{"0", "The version was printed."}, exitUsageDef},
	},
	"lockmgr-completion": {
		exits: []manDef{{"0", "The script was printed."}, exitUsageDef},
	},
}
