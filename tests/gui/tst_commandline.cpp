// The GUI executable's command line: `quantscope PATH --screenshot OUT.png` opens the model given as
// argument, renders the window offscreen and quits — what scripts/screenshots.sh relies on.
#include <QImage>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

class TestCommandLine : public QObject {
    Q_OBJECT

private slots:
    void screenshotOfSample();
    void screenshotAfterError();
};

namespace {

QProcessEnvironment offscreenEnv(const QString& configDir)
{
    auto env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), configDir); // keep the user's settings untouched
    env.insert(QStringLiteral("QUANTSCOPE_CACHE_DIR"), configDir + QStringLiteral("/cache"));
    env.insert(QStringLiteral("XDG_DATA_HOME"), configDir + QStringLiteral("/data"));
    return env;
}

} // namespace

void TestCommandLine::screenshotOfSample()
{
    const QString exe = QStringLiteral(QS_BIN_DIR "/quantscope");
    if (!QFileInfo::exists(exe))
        QSKIP("quantscope executable not built");
    QTemporaryDir dir;
    const QString out = dir.filePath(QStringLiteral("shot.png"));
    QProcess p;
    p.setProcessEnvironment(offscreenEnv(dir.path()));
    p.start(exe, {QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"), QStringLiteral("--screenshot"), out,
                  QStringLiteral("--size"), QStringLiteral("900x600")});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitStatus(), QProcess::NormalExit);
    QCOMPARE(p.exitCode(), 0);
    QImage image(out);
    QVERIFY(!image.isNull());
    QCOMPARE(image.size() / image.devicePixelRatio(), QSize(900, 600));
    // It opened the model: the sample was added to the recent files of this settings folder.
    QFile ini(dir.filePath(QStringLiteral("Quantscope/Quantscope.conf")));
    QVERIFY(ini.open(QIODevice::ReadOnly));
    QVERIFY(ini.readAll().contains("stories260K.gguf"));
}

void TestCommandLine::screenshotAfterError()
{
    const QString exe = QStringLiteral(QS_BIN_DIR "/quantscope");
    if (!QFileInfo::exists(exe))
        QSKIP("quantscope executable not built");
    QTemporaryDir dir;
    const QString out = dir.filePath(QStringLiteral("shot.png"));
    QProcess p;
    p.setProcessEnvironment(offscreenEnv(dir.path()));
    p.start(exe, {dir.filePath(QStringLiteral("missing.gguf")), QStringLiteral("--screenshot"), out});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 0); // the error goes to stderr instead of a blocking dialog
    QVERIFY(p.readAllStandardError().contains("missing.gguf"));
    QVERIFY(QFileInfo::exists(out));
}

QTEST_MAIN(TestCommandLine)
#include "tst_commandline.moc"
