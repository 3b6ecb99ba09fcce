// Package docs holds the tests that keep lockmgr's documentation, docs/
// and the lockmgr.toml(5) man page, true to the code: the exit codes it
// lists are cli/exitcodes.go's, its TOML examples parse (or, where marked,
// are refused) with lockmgr's own parser, every configuration key and
// default is named, every test and file it cites exists, and the Go it
// quotes from Example functions is quoted whole. The examples that can
// run are run (run_test.go): the quickstart's output, the environment a
// command gets, the flock link set-ups under cron's, systemd's and a login
// shell's PATH, and the crontab lines. The research notes' claims are
// checked by ../research. It has no code of its own.
package docs
