// Data safety of the plan autosave (issue 14): a real `quantscope` process killed with SIGKILL while its plan
// has unsaved edits leaves an autosave that a new process restores; an autosave write that fails (a full disk,
// the autosave folder replaced by a file) says so in the status bar, crashes nothing and leaves the previous
// autosave whole.
#include "isolated_settings.h"

#include "app/gui/mainwindow.h"
#include "core/plan/planio.h"
#include "core/util/atomicfile.h"
#include "widgets/plandocument.h"

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QSignalSpy>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

using namespace qs;

namespace {

QString samplePath()
{
    return QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

std::string formatIn(const QByteArray& planJson, const std::string& tensor)
{
    return planFromJson(planJson.toStdString()).formatOf(tensor).value_or("");
}

// Answers "restore?" with yes and records the autosave offered.
MainWindow::RestorePrompt answerYes(QStringList* offered)
{
    return [offered](const QString& path, std::function<void(bool)> answer) {
        *offered << path;
        answer(true);
    };
}

} // namespace

class TestCrashRestore : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void killedProcessPlanIsRestored();
    void failedAutosaveIsReportedAndKeepsPrevious();

private:
    QTemporaryDir m_dir;
};

void TestCrashRestore::initTestCase()
{
    QVERIFY(m_dir.isValid());
    isolateGuiTest(m_dir, QStringLiteral("tst_crashrestore"));
}

void TestCrashRestore::killedProcessPlanIsRestored()
{
    const QString exe = QStringLiteral(QS_BIN_DIR "/quantscope");
    QVERIFY2(QFileInfo::exists(exe), "the quantscope executable is built before this test");
    const QString model = QFileInfo(samplePath()).absoluteFilePath();
    const QString tensor = QStringLiteral("blk.3.ffn_up.weight");
    const QString format = QStringLiteral("F16");
    const QString autosave = QString::fromStdString(autosavePath(model.toStdString()).string());
    discardAutosave(model.toStdString());

    // The child shares this test's data folder (XDG_DATA_HOME, set by isolateGuiTest), so its autosave is
    // the one this process looks for.
    QProcess child;
    auto env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), m_dir.filePath(QStringLiteral("child-config")));
    env.insert(QStringLiteral("QUANTSCOPE_CACHE_DIR"), m_dir.filePath(QStringLiteral("child-cache")));
    env.insert(QStringLiteral("XDG_DATA_HOME"), qEnvironmentVariable("XDG_DATA_HOME"));
    env.insert(QStringLiteral("QUANTSCOPE_TEST_EDIT"), tensor + QLatin1Char('=') + format);
    child.setProcessEnvironment(env);
    QByteArray err;
    connect(&child, &QProcess::readyReadStandardError, this, [&] { err += child.readAllStandardError(); });
    child.start(exe, {model});
    QVERIFY(child.waitForStarted(10000));
    QTRY_VERIFY2_WITH_TIMEOUT(err.contains("quantscope: autosaved "), err.constData(), 60000);
    QCOMPARE(child.state(), QProcess::Running); // the edit is unsaved and the window still open
    QVERIFY2(err.contains(QFile::encodeName(autosave)), err.constData());

    child.kill(); // SIGKILL: no destructors, no close handlers
    QVERIFY(child.waitForFinished(10000));
    QCOMPARE(child.exitStatus(), QProcess::CrashExit);

    // What the killed process left is a whole plan holding the edit...
    const Plan left = loadPlan(autosave.toStdString());
    QCOMPARE(QString::fromStdString(left.formatOf(tensor.toStdString()).value_or("")), format);
    QVERIFY(QDir(QFileInfo(autosave).absolutePath()).entryList(QDir::Files).size() == 1); // no temporary left

    // ...and a new process offers it and restores it.
    MainWindow window;
    QStringList offered;
    window.setRestorePrompt(answerYes(&offered));
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(model);
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    QCOMPARE(offered, QStringList{autosave});
    PlanDocument* plan = window.planDocument();
    QCOMPARE(QString::fromStdString(plan->plan().formatOf(tensor.toStdString()).value_or("")), format);
    QVERIFY(plan->plan() == left);
    // The restore is the one undo step, and undoing it shows the default plan did not hold the edit.
    QCOMPARE(plan->undoStack()->count(), 1);
    plan->undoStack()->undo();
    QVERIFY(plan->plan().formatOf(tensor.toStdString()).value_or("") != format.toStdString());
    discardAutosave(model.toStdString());
}

void TestCrashRestore::failedAutosaveIsReportedAndKeepsPrevious()
{
    const QString model = QFileInfo(samplePath()).absoluteFilePath();
    const QString autosave = QString::fromStdString(autosavePath(model.toStdString()).string());
    const QString folder = QFileInfo(autosave).absolutePath();
    discardAutosave(model.toStdString());
    MainWindow window;
    window.setRestorePrompt([](const QString&, std::function<void(bool)>) { QFAIL("nothing to restore"); });
    QStringList errors;
    window.setErrorPresenter([&](const QString&, const QString& text, const QString& detail) {
        errors << text + QLatin1Char('\n') + detail;
    });
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(model);
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    PlanDocument* plan = window.planDocument();
    QSignalSpy autosaved(window.planSession(), &PlanSession::autosaved);

    // A good autosave first. (The default plan has these tensors in another format.)
    for (const char* t : {"blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.4.attn_q.weight"})
        QVERIFY(plan->plan().formatOf(t).value_or("") != "F16");
    QVERIFY(plan->assign({QStringLiteral("blk.0.attn_q.weight")}, QStringLiteral("F16")));
    QTRY_COMPARE_WITH_TIMEOUT(autosaved.count(), 1, 10000);
    const QByteArray good = readAll(autosave);
    QCOMPARE(formatIn(good, "blk.0.attn_q.weight"), std::string("F16"));
    QVERIFY(formatIn(good, "blk.1.attn_q.weight") != "F16");

    // 1. The disk fills up in the middle of the next autosave.
    AtomicFile::setFailAfterBytesForTesting(64);
    window.statusBar()->clearMessage();
    QVERIFY(plan->assign({QStringLiteral("blk.1.attn_q.weight")}, QStringLiteral("F16")));
    QTRY_VERIFY_WITH_TIMEOUT(window.statusBar()->currentMessage().startsWith(QStringLiteral("Autosave failed")),
                             10000);
    AtomicFile::setFailAfterBytesForTesting(0);
    QVERIFY2(window.statusBar()->currentMessage().contains(QStringLiteral("No space left on device")),
             qPrintable(window.statusBar()->currentMessage()));
    QCOMPARE(autosaved.count(), 1);
    QCOMPARE(readAll(autosave), good); // the previous autosave, whole
    QCOMPARE(QDir(folder).entryList(QDir::Files | QDir::Hidden), QStringList{QFileInfo(autosave).fileName()});

    // 2. The autosave folder is replaced by a file: the write cannot even start.
    const QString moved = folder + QStringLiteral(".moved");
    QVERIFY(QDir().rename(folder, moved));
    {
        QFile blocker(folder);
        QVERIFY(blocker.open(QIODevice::WriteOnly));
        blocker.write("not a folder");
    }
    window.statusBar()->clearMessage();
    QVERIFY(plan->assign({QStringLiteral("blk.2.attn_q.weight")}, QStringLiteral("F16")));
    QTRY_VERIFY_WITH_TIMEOUT(window.statusBar()->currentMessage().startsWith(QStringLiteral("Autosave failed")),
                             10000);
    QCOMPARE(autosaved.count(), 1);
    QCOMPARE(readAll(folder), QByteArray("not a folder"));

    // Switching models with the edits unsaved and the autosave failing: an error, not "your plan is kept".
    window.openPath(model);
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 2, 10000);
    QCOMPARE(errors.size(), 1);
    QVERIFY2(errors.front().contains(QStringLiteral("could not be kept")), qPrintable(errors.front()));
    QVERIFY(!window.statusBar()->currentMessage().contains(QStringLiteral("is kept")));

    // Once the folder is back, the next edit is autosaved again.
    QVERIFY(QFile::remove(folder));
    QVERIFY(QDir().rename(moved, folder));
    QCOMPARE(readAll(autosave), good);
    QVERIFY(plan->assign({QStringLiteral("blk.4.attn_q.weight")}, QStringLiteral("F16")));
    QTRY_COMPARE_WITH_TIMEOUT(autosaved.count(), 2, 10000);
    const Plan now = loadPlan(autosave.toStdString());
    QCOMPARE(now.formatOf("blk.4.attn_q.weight").value_or(""), std::string("F16"));
    discardAutosave(model.toStdString());
}

QTEST_MAIN(TestCrashRestore)
#include "tst_crashrestore.moc"
