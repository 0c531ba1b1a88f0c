// Atomic, durable writes (core/util/atomicfile.h) and the writers that use them (plans, exports): a failed
// write (an injected ENOSPC; tests/app/tst_cli_diskfull.cpp fills a real filesystem) never replaces a good file and leaves no
// temporary file behind.
#include "core/plan/export.h"
#include "core/plan/planio.h"
#include "core/util/atomicfile.h"
#include "core/util/error.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>


using namespace qs;

namespace {
QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray("<missing>");
}
QStringList entries(const QTemporaryDir& dir)
{
    return QDir(dir.path()).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot, QDir::Name);
}
struct FailAfter {
    explicit FailAfter(uint64_t bytes) { AtomicFile::setFailAfterBytesForTesting(bytes); }
    ~FailAfter() { AtomicFile::setFailAfterBytesForTesting(0); }
};
} // namespace

class TestAtomicFile : public QObject {
    Q_OBJECT

private slots:
    void commitWritesEverything()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("out.bin"));
        {
            AtomicFile f(path.toStdString());
            f.write("hello ");
            f.writeZeros(3);
            f.write(std::string_view("world"));
            QCOMPARE(f.bytesWritten(), uint64_t(14));
            QVERIFY(!QFile::exists(path)); // nothing visible before commit
            f.commit();
        }
        QCOMPARE(readAll(path), QByteArray("hello \0\0\0world", 14));
        QCOMPARE(entries(dir), QStringList{QStringLiteral("out.bin")});
    }

    void abandonedWriteLeavesNothing()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("old.txt"));
        writeFileAtomically(path.toStdString(), "good");
        {
            AtomicFile f(path.toStdString());
            f.write("half");
        } // no commit: e.g. the job was cancelled
        QCOMPARE(readAll(path), QByteArray("good"));
        QCOMPARE(entries(dir), QStringList{QStringLiteral("old.txt")});
    }

    void diskFullKeepsTheOldFile()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("plan.json"));
        writeFileAtomically(path.toStdString(), "the good plan");
        FailAfter full(4);
        bool thrown = false;
        try {
            writeFileAtomically(path.toStdString(), "a much longer replacement");
        } catch (const Error& e) {
            thrown = e.code() == ErrorCode::Io && QString::fromUtf8(e.what()).contains(QStringLiteral("No space"));
        }
        QVERIFY(thrown);
        QCOMPARE(readAll(path), QByteArray("the good plan"));
        QCOMPARE(entries(dir), QStringList{QStringLiteral("plan.json")});
    }

    void fileSetIsAllOrNothing()
    {
        QTemporaryDir dir;
        const QString a = dir.filePath(QStringLiteral("a-00001-of-00002")), b = dir.filePath(QStringLiteral("a-00002-of-00002"));
        {
            FailAfter full(10);
            AtomicFileSet set;
            set.add(a.toStdString()).write("12345");
            QVERIFY_THROWS_EXCEPTION(Error, set.add(b.toStdString()).write("123456789012"));
        }
        QVERIFY(entries(dir).isEmpty());
        AtomicFileSet set;
        set.add(a.toStdString()).write("first");
        set.add(b.toStdString()).write("second");
        set.commit();
        QCOMPARE(readAll(a), QByteArray("first"));
        QCOMPARE(readAll(b), QByteArray("second"));
    }

    void planSaveOnFullDiskKeepsThePlan()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("plan.json"));
        Plan plan;
        plan.assign("blk.0.attn_q.weight", "Q4_K");
        savePlan(plan, path.toStdString());
        const QByteArray good = readAll(path);
        Plan bigger = plan;
        for (int i = 0; i < 200; ++i)
            bigger.assign("blk." + std::to_string(i) + ".ffn_down.weight", "Q6_K");
        FailAfter full(uint64_t(good.size()));
        QVERIFY_THROWS_EXCEPTION(PlanFileError, savePlan(bigger, path.toStdString()));
        QCOMPARE(readAll(path), good);
        QCOMPARE(loadPlan(path.toStdString()), plan);
        QCOMPARE(entries(dir), QStringList{QStringLiteral("plan.json")});
    }

    void exportOnFullDiskKeepsTheFile()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("types.txt"));
        ExportResult r;
        r.text = "blk.0.attn_q.weight=q4_K\n";
        writeExport(r, path.toStdString());
        FailAfter full(8);
        r.text = "blk.0.attn_q.weight=q6_K\nblk.0.attn_k.weight=q6_K\n";
        QVERIFY_THROWS_EXCEPTION(Error, writeExport(r, path.toStdString()));
        QCOMPARE(readAll(path), QByteArray("blk.0.attn_q.weight=q4_K\n"));
    }

    void committingAMissingTemporaryFails()
    {
        QTemporaryDir dir;
        const auto dest = std::filesystem::path(dir.filePath(QStringLiteral("x.png")).toStdString());
        QVERIFY_THROWS_EXCEPTION(Error, commitTemporaryFile(temporaryPathBeside(dest), dest));
        QVERIFY(!QFile::exists(QString::fromStdString(dest.string())));
    }
};

QTEST_APPLESS_MAIN(TestAtomicFile)
#include "tst_atomicfile.moc"
