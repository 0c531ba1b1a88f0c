// Special files given where a regular file is expected: a FIFO (which would block every open() until a
// writer comes), a symlink to /dev/zero (endless, and its size reads 0), and a folder. Every command that
// reads a file refuses each at once with "not a regular file", instead of hanging or reading forever.
#include "app/cli_runner.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <sys/stat.h>

class TestCliSpecialFiles : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        QVERIFY(::mkfifo(qPrintable(m_dir.filePath(QStringLiteral("fifo"))), 0600) == 0);
        QVERIFY(QFile::link(QStringLiteral("/dev/zero"), m_dir.filePath(QStringLiteral("zero"))));
        QVERIFY(QDir(m_dir.path()).mkdir(QStringLiteral("folder.json")));
        const CliRun plan = runQuantscopeCli({QStringLiteral("plan"), QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"),
                                              QStringLiteral("--preset"), QStringLiteral("all-Q8_0"), QStringLiteral("--out"),
                                              m_dir.filePath(QStringLiteral("plan.json"))});
        QCOMPARE(plan.exitCode, 0);
    }

    void refusedAtOnce_data()
    {
        QTest::addColumn<QStringList>("args"); // "@" stands for the special file
        QTest::addColumn<QString>("kind");
        const QString sample = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        const QString plan = m_dir.filePath(QStringLiteral("plan.json"));
        const QList<QPair<QString, QString>> specials = {{QStringLiteral("fifo"), QStringLiteral("a FIFO")},
                                                         {QStringLiteral("zero"), QStringLiteral("a device")}};
        for (const auto& [file, kind] : specials) {
            auto row = [&](const char* name, QStringList args) {
                QTest::newRow(qPrintable(file + QLatin1Char(' ') + QLatin1String(name))) << args << kind;
            };
            row("inspect model", {QStringLiteral("inspect"), QStringLiteral("@")});
            row("stats model", {QStringLiteral("stats"), QStringLiteral("@")});
            row("plan --rules", {QStringLiteral("plan"), sample, QStringLiteral("--rules"), QStringLiteral("@")});
            row("export plan", {QStringLiteral("export"), QStringLiteral("@"), QStringLiteral("--to"), QStringLiteral("json")});
            row("estimate --config", {QStringLiteral("estimate"), QStringLiteral("--config"), QStringLiteral("@"),
                                      QStringLiteral("--gpu"), QStringLiteral("RTX 4090")});
            row("estimate --plan", {QStringLiteral("estimate"), sample, QStringLiteral("--plan"), QStringLiteral("@"),
                                    QStringLiteral("--gpu"), QStringLiteral("RTX 4090")});
        }
        QTest::newRow("folder as plan") << QStringList{QStringLiteral("export"), m_dir.filePath(QStringLiteral("folder.json")),
                                                       QStringLiteral("--to"), QStringLiteral("json")}
                                        << QStringLiteral("a folder");
        Q_UNUSED(plan);
    }

    void refusedAtOnce()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, kind);
        const QString special = kind == QLatin1String("a FIFO") ? QStringLiteral("fifo") : QStringLiteral("zero");
        for (QString& a : args)
            if (a == QLatin1String("@"))
                a = m_dir.filePath(special);
        const CliRun r = runQuantscopeCli(args, QProcessEnvironment::systemEnvironment(), 20000);
        QVERIFY2(r.exitCode != -1, "the command hung");
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("not a regular file (" + kind.toUtf8() + ")"), r.err.constData());
    }

private:
    QTemporaryDir m_dir;
};

QTEST_APPLESS_MAIN(TestCliSpecialFiles)
#include "tst_cli_special_files.moc"
