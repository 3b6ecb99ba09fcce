package backend

// PluginBinaryPrefix starts the file name of every backend plugin:
// backend NAME is the binary lockmgr-backend-NAME, which the host looks
// for on its plugin search path and a backend's author must build. It is
// here, in the package every backend and every part of lockmgr imports
// (and which imports nothing of lockmgr's), so that the host that starts
// plugins and the code that reads them in /proc (core/proclocks,
// core/holders) spell it once.
const PluginBinaryPrefix = "lockmgr-backend-"

// commLen is how much of a command name the kernel keeps: TASK_COMM_LEN
// (16 bytes) less its NUL.
const commLen = 15

// PluginComm returns the command name of every backend plugin process as
// the kernel shows it (/proc/PID/comm and stat, ps): PluginBinaryPrefix
// cut to 15 bytes, so that lockmgr-backend-flock and lockmgr-backend-etcd
// both show as "lockmgr-backend". /proc/locks names a lock's owner by pid
// alone, and this is how a plugin's process is told from others.
func PluginComm() string {
	return PluginBinaryPrefix[:min(len(PluginBinaryPrefix), commLen)]
}
