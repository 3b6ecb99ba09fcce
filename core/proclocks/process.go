package proclocks

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Command returns the command name of process pid (/proc/PID/comm: the
// executable's base name cut to 15 bytes, unless the process renamed
// itself), so that a lock's holder can be shown as more than a number. It
// returns "" when the process has exited or cannot be read.
func Command(pid int) string {
	if pid <= 0 {
		return ""
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return string(bytes.TrimRight(data, "\n"))
}

// ParentPID returns the parent of process pid, from /proc/PID/stat, or -1
// when the process has exited or cannot be read. lockmgr uses it to show a
// lock held by a backend plugin process as held by the lockmgr process
// that started the plugin.
func ParentPID(pid int) int {
	fields, ok := statFields(pid)
	if !ok || len(fields) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return -1
	}
	return ppid
}

// startTime returns when process pid started, in clock ticks after boot
// (field 22 of /proc/PID/stat), or 0 when it cannot be read.
func startTime(pid int) uint64 {
	fields, ok := statFields(pid)
	if !ok || len(fields) < 20 {
		return 0
	}
	t, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0
	}
	return t
}

// alive reports whether process pid exists and has not exited. A zombie
// counts as exited: the kernel closed its descriptors when it died, so it
// holds no lock, though it keeps its /proc entry until it is reaped.
// Existence is asked of kill(2) rather than /proc, because a procfs
// mounted with hidepid hides other users' live processes.
func alive(pid int) bool {
	if pid <= 0 || unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	if fields, ok := statFields(pid); ok && len(fields) > 0 {
		state := string(fields[0])
		return state != "Z" && state != "X"
	}
	return true
}

// statFields returns the fields of /proc/PID/stat that follow the command
// name, so that fields[0] is the state (field 3 in proc(5)) and fields[1]
// the parent's pid (field 4).
func statFields(pid int) ([][]byte, bool) {
	if pid <= 0 {
		return nil, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	return fieldsAfterComm(data)
}

// fieldsAfterComm splits a /proc/PID/stat line after its second field, the
// command name in parentheses. The name is whatever the process chose
// (prctl PR_SET_NAME) and may hold spaces and parentheses of its own, so
// the fields start after the last ')' in the line, never the first: the
// fields that follow are numbers and a state letter, which contain none.
func fieldsAfterComm(data []byte) ([][]byte, bool) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, false
	}
	return bytes.Fields(data[i+1:]), true
}
