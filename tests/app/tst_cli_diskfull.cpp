// `plan --out` and `export --out` on a really full filesystem: the command fails with the reason, and the
// good file that was there survives, with no temporary file left beside it. A 64 KiB tmpfs is mounted in a
// private mount namespace (unshare -m), which needs root: CI runs as root.
#include "app/cli_runner.h"

#include <QDir>
#include <QFile>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include <unistd.h>

class TestCliDiskFull : public QObject {
    Q_OBJECT

private slots:
    void fullDiskKeepsGoodFiles_data()
    {
        QTest::addColumn<QString>("command");
        const QString cli = QStringLiteral(QS_BIN_DIR "/quantscope-cli");
        const QString sample = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        QTest::newRow("plan --out") << QStringLiteral("'%1' plan '%2' --preset all-Q8_0 --out \"$M/good.json\"").arg(cli, sample);
        QTest::newRow("export --out") << QStringLiteral("'%1' export \"$T/plan.json\" --to json --out \"$M/good.json\"").arg(cli);
    }

    void fullDiskKeepsGoodFiles()
    {
        QFETCH(QString, command);
        if (::geteuid() != 0)
            QSKIP("mounting a tiny filesystem needs root (CI runs as root; tst_atomicfile injects the failure)");
        QTemporaryDir dir;
        const QString mnt = dir.filePath(QStringLiteral("tiny"));
        QVERIFY(QDir().mkpath(mnt));
        // A plan to export, written outside the tiny filesystem.
        const CliRun made = runQuantscopeCli({QStringLiteral("plan"), QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"),
                                              QStringLiteral("--preset"), QStringLiteral("all-Q8_0"), QStringLiteral("--out"),
                                              dir.filePath(QStringLiteral("plan.json"))});
        QCOMPARE(made.exitCode, 0);
        const QString script = QStringLiteral(
                                   "M='%1'; T='%2'; mount -t tmpfs -o size=64k tmpfs \"$M\" || exit 77; "
                                   "printf good > \"$M/good.json\"; dd if=/dev/zero of=\"$M/fill\" bs=4k 2>/dev/null; "
                                   "%3; echo \"exit=$?\"; cat \"$M/good.json\"; echo; ls -A \"$M\"")
                                   .arg(mnt, dir.path(), command);
        QProcess p;
        p.start(QStringLiteral("unshare"), {QStringLiteral("-m"), QStringLiteral("sh"), QStringLiteral("-c"), script});
        QVERIFY(p.waitForFinished(60000));
        const QString out = QString::fromUtf8(p.readAllStandardOutput());
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QVERIFY2(p.exitCode() != 77, qPrintable(QStringLiteral("cannot mount a tmpfs: ") + err));
        QVERIFY2(out.contains(QStringLiteral("exit=1\n")), qPrintable(out + err));
        QVERIFY2(err.contains(QStringLiteral("No space left on device")), qPrintable(err));
        QVERIFY2(out.contains(QStringLiteral("\ngood\n")), qPrintable(out)); // the old file survived
        QVERIFY2(!out.contains(QStringLiteral(".tmp")), qPrintable(out));     // nothing left behind
    }
};

QTEST_APPLESS_MAIN(TestCliDiskFull)
#include "tst_cli_diskfull.moc"
