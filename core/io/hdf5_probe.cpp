#include "core/io/hdf5_probe.h"

#include "core/util/error.h"
#include "core/util/job.h"

#include <QElapsedTimer>
#include <utility>
#include <QProcess>
#include <csignal>
#include <cstdlib>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

namespace qs::h5 {

namespace {

bool isExecutable(const std::string& path)
{
    std::error_code ec;
    return !path.empty() && std::filesystem::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

std::string selfDirectory()
{
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : exe.parent_path().string();
}

// Keeps the stderr lines that are not progress reports (the last few KB), and forwards progress.
class StderrFilter {
public:
    explicit StderrFilter(JobControl* job) : m_job(job) {}
    void feed(const QByteArray& data)
    {
        m_pending += data.toStdString();
        size_t nl;
        while ((nl = m_pending.find('\n')) != std::string::npos) {
            line(m_pending.substr(0, nl));
            m_pending.erase(0, nl + 1);
        }
        if (m_pending.size() > 4096) {
            line(m_pending);
            m_pending.clear();
        }
    }
    std::string tail() const { return m_tail + m_pending.substr(0, 4096); }
    // Whether a progress line since the last call reported more done than any before it. Other output,
    // and progress lines that repeat or go back, are not progress: a helper stuck in a loop that prints
    // must still run into the inactivity limit.
    bool takeAdvance() { return std::exchange(m_advanced, false); }

private:
    void line(const std::string& l)
    {
        if (l.starts_with("progress ")) {
            char* end = nullptr;
            const double f = std::strtod(l.c_str() + 9, &end);
            if (end && f >= 0.0 && f <= 1.0) {
                if (f > m_best) {
                    m_best = f;
                    m_advanced = true;
                }
                if (m_job) {
                    std::string stage = *end == ' ' ? std::string(end + 1) : std::string();
                    m_job->report(f, stage.substr(0, 80));
                }
            }
            return;
        }
        m_tail += l.substr(0, 1024) + "\n";
        if (m_tail.size() > 8192)
            m_tail.erase(0, m_tail.size() - 8192);
    }
    JobControl* m_job;
    std::string m_pending;
    std::string m_tail;
    double m_best = -1.0;
    bool m_advanced = false;
};

} // namespace

std::string findProbeExecutable()
{
    std::vector<std::string> tried;
    auto consider = [&](const std::string& candidate) {
        tried.push_back(candidate);
        return isExecutable(candidate);
    };
    if (const char* env = std::getenv("QUANTSCOPE_H5PROBE"); env && *env) {
        if (consider(env))
            return env;
    }
    if (const std::string dir = selfDirectory(); !dir.empty()) {
        if (consider(dir + "/quantscope-h5probe"))
            return dir + "/quantscope-h5probe";
        // An installed tree moved elsewhere: <prefix>/bin/quantscope -> <prefix>/libexec/quantscope/.
        if (consider(dir + "/../libexec/quantscope/quantscope-h5probe"))
            return dir + "/../libexec/quantscope/quantscope-h5probe";
    }
#ifdef QS_H5PROBE_INSTALL_PATH
    if (consider(QS_H5PROBE_INSTALL_PATH))
        return QS_H5PROBE_INSTALL_PATH;
#endif
#ifdef QS_H5PROBE_BUILD_PATH
    if (consider(QS_H5PROBE_BUILD_PATH))
        return QS_H5PROBE_BUILD_PATH;
#endif
    std::string list;
    for (const auto& t : tried)
        list += (list.empty() ? "" : ", ") + t;
    throw Error(ErrorCode::Io, "the HDF5 helper quantscope-h5probe was not found (looked at: " + list +
                                   "; set QUANTSCOPE_H5PROBE to its path)");
}

ProbeRun runProbe(const std::filesystem::path& file, const ProbeOptions& options, JobControl* job)
{
    ProbeRun run;
    run.executable = options.executable.empty() ? findProbeExecutable() : options.executable;

    QStringList args;
    if (!options.copyTo.empty())
        args << QStringLiteral("--copy-to") << QString::fromStdString(options.copyTo)
             << QStringLiteral("--copy-limit") << QString::number(options.copyLimit);
    args << QString::fromStdString(file.string());

    QProcess proc;
    proc.setProgram(QString::fromStdString(run.executable));
    proc.setArguments(args);
    proc.setProcessChannelMode(QProcess::SeparateChannels);
    proc.setStandardInputFile(QProcess::nullDevice());
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.remove(QStringLiteral("HDF5_PLUGIN_PATH"));
    env.insert(QStringLiteral("HDF5_PLUGIN_PRELOAD"), QStringLiteral("::"));      // "::" disables all plugins
    env.insert(QStringLiteral("HDF5_USE_FILE_LOCKING"), QStringLiteral("FALSE")); // read-only media, NFS
#ifdef QS_ASAN_BUILD
    // Let libhdf5's crashes end the probe by the signal, as in a normal build, instead of ASan's exit 1.
    env.insert(
        QStringLiteral("ASAN_OPTIONS"),
        env.value(QStringLiteral("ASAN_OPTIONS")) +
            QStringLiteral(":handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0:detect_leaks=0"));
#endif
    proc.setProcessEnvironment(env);

    // Runs in the child between fork and exec: only async-signal-safe calls.
    const rlim_t memory = static_cast<rlim_t>(options.memoryLimitBytes);
    const rlim_t fileSize = static_cast<rlim_t>(options.copyLimit + kProbeCopySlackBytes);
    proc.setChildProcessModifier([memory, fileSize] {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the application
        struct rlimit none = {0, 0};
        ::setrlimit(RLIMIT_CORE, &none);
#ifndef QS_ASAN_BUILD
        if (memory > 0) {
            struct rlimit as = {memory, memory};
            ::setrlimit(RLIMIT_AS, &as);
        }
#else
        (void)memory;
#endif
        struct rlimit fs = {fileSize, fileSize};
        ::setrlimit(RLIMIT_FSIZE, &fs);
    });

    QElapsedTimer total;
    total.start();
    proc.start();
    if (!proc.waitForStarted(10000)) {
        run.status = ProbeRun::Status::FailedToStart;
        run.errorTail = proc.errorString().toStdString();
        return run;
    }

    StderrFilter stderrFilter(job);
    QElapsedTimer idle;
    idle.start();
    bool finished = false;
    auto stop = [&] {
        proc.kill();
        proc.waitForFinished(5000);
    };
    while (!finished) {
        finished = proc.waitForFinished(100) || proc.state() == QProcess::NotRunning;
        const QByteArray out = proc.readAllStandardOutput();
        const QByteArray err = proc.readAllStandardError();
        // Progress is a new record on stdout (one per dataset) or a higher fraction on stderr; output as
        // such is not (the total output is capped below, the time of the whole run by totalTimeoutMs).
        bool advanced = out.contains('\n');
        if (run.output.size() + static_cast<size_t>(out.size()) > options.maxOutputBytes) {
            stop();
            run.status = ProbeRun::Status::OutputTooLarge;
            run.elapsedMs = static_cast<int>(total.elapsed());
            return run;
        }
        run.output.append(out.constData(), static_cast<size_t>(out.size()));
        stderrFilter.feed(err);
        advanced = stderrFilter.takeAdvance() || advanced;
        if (advanced)
            idle.restart();
        if (finished)
            break;
        if (job && job->cancelled()) {
            stop();
            throw CancelledError();
        }
        if (idle.elapsed() > options.inactivityTimeoutMs || total.elapsed() > options.totalTimeoutMs) {
            stop();
            run.status = ProbeRun::Status::TimedOut;
            run.errorTail = stderrFilter.tail();
            run.elapsedMs = static_cast<int>(total.elapsed());
            return run;
        }
    }
    run.elapsedMs = static_cast<int>(total.elapsed());
    run.errorTail = stderrFilter.tail();
    if (proc.exitStatus() == QProcess::CrashExit) {
        run.status = ProbeRun::Status::Signalled;
        run.signal = proc.exitCode(); // Qt reports the terminating signal here on Unix
    } else {
        run.status = ProbeRun::Status::Exited;
        run.exitCode = proc.exitCode();
    }
    return run;
}

} // namespace qs::h5
