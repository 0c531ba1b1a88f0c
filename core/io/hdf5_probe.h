#pragma once
// Running quantscope-h5probe: finding the executable and supervising the child process (time, memory,
// output size, cancellation). The result is raw; qs::loadHdf5 turns it into a Model or a typed error.

#include "core/io/hdf5_protocol.h"

#include <cstdint>
#include <filesystem>
#include <string>

namespace qs {
class JobControl;
}

namespace qs::h5 {

struct ProbeOptions {
    std::string executable; // empty: findProbeExecutable()
    std::string copyTo;     // file the probe may fill with decoded datasets (empty: none)
    uint64_t copyLimit = 0; // bytes the probe may write there
    // A probe that makes no progress (no new record, no higher progress fraction) for this long is hung.
    int inactivityTimeoutMs = 20000;
    int totalTimeoutMs = kProbeTimeLimitSeconds * 1000; // hard limit even while it keeps reporting progress
    uint64_t memoryLimitBytes = kProbeMemoryLimitBytes;  // RLIMIT_AS of the child (not in sanitizer builds)
    size_t maxOutputBytes = 256u << 20;
};

struct ProbeRun {
    enum class Status { Exited, Signalled, TimedOut, OutputTooLarge, FailedToStart };
    Status status = Status::FailedToStart;
    int exitCode = 0;       // Exited
    int signal = 0;         // Signalled
    std::string output;     // stdout
    std::string errorTail;  // last lines of stderr that are not progress lines
    std::string executable; // what ran
    int elapsedMs = 0;
};

// QUANTSCOPE_H5PROBE, then next to the running executable, then the install path, then the build tree.
// Throws qs::Error(Io) naming every place it looked when none holds an executable probe.
std::string findProbeExecutable();

// Runs the probe on `file` and waits for it, polling job for cancellation (kills the probe and throws
// qs::CancelledError) and forwarding its progress lines to job->report().
ProbeRun runProbe(const std::filesystem::path& file, const ProbeOptions& options, JobControl* job);

} // namespace qs::h5
