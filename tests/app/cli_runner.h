#pragma once
// Runs the real build/bin/quantscope-cli for the CLI tests.

#include <QByteArray>
#include <QProcess>
#include <QProcessEnvironment>
#include <QStringList>

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
