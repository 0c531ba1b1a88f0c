#pragma once
// Runs the real build/bin/quantscope-cli for the CLI tests.

#include <QByteArray>
#include <QProcess>
#include <QProcessEnvironment>
#include <QStringList>
#include <csignal>

struct CliRun {
    int exitCode = -1; // -1: timed out (and killed), -2: crashed
    QByteArray out, err;
};

inline CliRun runQuantscopeCli(const QStringList& args,
                               const QProcessEnvironment& env = QProcessEnvironment::systemEnvironment(),
                               int timeoutMs = 120000)
{
    QProcess p;
    p.setProcessEnvironment(env);
    p.start(QStringLiteral(QS_BIN_DIR "/quantscope-cli"), args);
    CliRun r;
    if (!p.waitForFinished(timeoutMs)) {
        p.kill();
        p.waitForFinished();
        return r;
    }
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -2;
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
    return r;
}

// Runs the CLI with QUANTSCOPE_CLI_TEST_HOLD set, so that its job stops at its first progress report, and
// sends SIGINT (Ctrl-C) once it says "quantscope-cli: holding". exitCode -1: it never held (or never ended).
inline CliRun interruptCliWhenHolding(const QStringList& args)
{
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("QUANTSCOPE_CLI_TEST_HOLD"), QStringLiteral("1"));
    p.setProcessEnvironment(env);
    p.start(QStringLiteral(QS_BIN_DIR "/quantscope-cli"), args);
    CliRun r;
    if (!p.waitForStarted())
        return r;
    p.setReadChannel(QProcess::StandardError);
    while (!r.err.contains("quantscope-cli: holding") && p.waitForReadyRead(30000))
        r.err += p.readAllStandardError();
    if (r.err.contains("quantscope-cli: holding") && p.state() == QProcess::Running)
        ::kill(static_cast<pid_t>(p.processId()), SIGINT);
    if (!p.waitForFinished(20000)) {
        p.kill();
        p.waitForFinished();
        return r;
    }
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -2;
    r.out = p.readAllStandardOutput();
    r.err += p.readAllStandardError();
    return r;
}
