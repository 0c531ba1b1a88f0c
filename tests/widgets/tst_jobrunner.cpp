// The one GUI job wrapper (widgets/jobrunner.h) and the job area (widgets/jobarea.h): progress, ETA,
// cancel from the area's button, several jobs at once, failures as typed results, waiting at close.
#include "core/util/job.h"
#include "widgets/jobarea.h"
#include "widgets/jobrunner.h"

#include <QProgressBar>
#include <QSignalSpy>
#include <QToolButton>
#include <QtTest>

#include <atomic>
#include <thread>

using namespace qs;

namespace {
// Reports progress until cancelled (or `limit` steps), counting the steps it made.
std::shared_ptr<FunctionJob> spinningJob(const std::string& title, std::atomic<int>& steps, int limit = 1 << 30)
{
    return std::make_shared<FunctionJob>(title, [&steps, limit](JobControl& c) {
        for (int i = 0; i < limit; ++i) {
            c.throwIfCancelled();
            c.reportBytes(uint64_t(i % 1000), 1000, "working");
            ++steps;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
}
} // namespace

class TestJobRunner : public QObject {
    Q_OBJECT

private slots:
    void cancelFromTheJobArea()
    {
        JobRunner runner;
        runner.setPollInterval(10);
        JobArea area(&runner);
        std::atomic<int> steps{0};
        JobHandle* handle = runner.start(spinningJob("Spinning", steps));
        QSignalSpy finished(handle, &JobHandle::finished);
        QCOMPARE(area.jobCount(), 1);
        QVERIFY(area.isVisibleTo(nullptr) || !area.isHidden());
        // Progress reaches the handle (and the bar) before the job ends.
        QTRY_VERIFY(handle->progress().bytesTotal == 1000);
        QTRY_VERIFY(area.progressBar(QStringLiteral("Spinning"))->value() > 0);
        QToolButton* cancel = area.cancelButton(QStringLiteral("Spinning"));
        QVERIFY(cancel);
        cancel->click();
        QTRY_COMPARE(finished.count(), 1);
        QCOMPARE(finished.at(0).at(0).value<JobStatus>(), JobStatus::Cancelled);
        QVERIFY(finished.at(0).at(1).toString().isEmpty()); // a cancel is not an error
        QCOMPARE(area.jobCount(), 0);
        QVERIFY(area.isHidden());
    }

    void severalJobsAtOnce()
    {
        JobRunner runner;
        runner.setPollInterval(10);
        JobArea area(&runner);
        std::atomic<int> a{0}, b{0}, c{0};
        runner.start(spinningJob("A", a));
        runner.start(spinningJob("B", b));
        JobHandle* third = runner.start(spinningJob("C", c, 5));
        QCOMPARE(area.jobCount(), 3);
        QSignalSpy done(&runner, &JobRunner::jobFinished);
        QTRY_COMPARE(done.count(), 1); // C ends on its own
        QCOMPARE(c.load(), 5);
        QCOMPARE(area.jobCount(), 2);
        QVERIFY(a.load() > 0 && b.load() > 0); // all three ran at the same time
        area.cancelButton(QStringLiteral("B"))->click();
        QTRY_COMPARE(done.count(), 2);
        QCOMPARE(area.jobCount(), 1);
        QVERIFY(area.cancelButton(QStringLiteral("A")));
        runner.cancelAll();
        QVERIFY(runner.waitForAll(10000));
        QTRY_COMPARE(area.jobCount(), 0);
        Q_UNUSED(third);
    }

    void failureIsATypedResult()
    {
        JobRunner runner;
        auto job = std::make_shared<FunctionJob>("Broken", [](JobControl&) {
            throw FormatError(ErrorCode::BadMagic, "x.gguf", "magic", 0, "not a GGUF file");
        });
        JobHandle* handle = runner.start(job);
        QSignalSpy finished(handle, &JobHandle::finished);
        QTRY_COMPARE(finished.count(), 1);
        QCOMPARE(finished.at(0).at(0).value<JobStatus>(), JobStatus::Failed);
        QCOMPARE(finished.at(0).at(1).toString(), QStringLiteral("x.gguf: magic at byte 0: not a GGUF file"));
        QCOMPARE(job->errorCode(), ErrorCode::BadMagic);
    }

    // Closing: cancel everything and wait on the workers; a job may outlive the runner's handles.
    void destroyingTheRunnerCancelsAndWaits()
    {
        std::atomic<int> steps{0};
        auto job = spinningJob("Long", steps);
        {
            JobRunner runner;
            runner.start(job);
            QTRY_VERIFY(steps.load() > 0);
        } // ~JobRunner: cancelAll + waitForAll
        QVERIFY(job->finished());
        QCOMPARE(job->status(), JobStatus::Cancelled);
        const int after = steps.load();
        QTest::qWait(20);
        QCOMPARE(steps.load(), after); // nothing runs any more
    }

    void etaFromProgress()
    {
        QCOMPARE(JobArea::formatEta(-1), QString());
        QCOMPARE(JobArea::formatEta(12.2), QStringLiteral("13 s left"));
        QCOMPARE(JobArea::formatEta(65), QStringLiteral("1:05 left"));
        QCOMPARE(JobArea::formatEta(7260), QStringLiteral("2 h 1 min left"));
    }
};

QTEST_MAIN(TestJobRunner)
#include "tst_jobrunner.moc"
