// The one job model (core/util/job.h) and the one thread pool (core/util/threadpool.h).
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <QtTest>

#include <atomic>
#include <numeric>
#include <semaphore>

using namespace qs;

class TestJob : public QObject {
    Q_OBJECT

private slots:
    void succeededJobReportsDone()
    {
        FunctionJob job("sum", [](JobControl& c) { c.reportBytes(50, 100, "half"); });
        QCOMPARE(job.status(), JobStatus::NotStarted);
        QCOMPARE(job.run(), JobStatus::Succeeded);
        QVERIFY(job.finished());
        const JobProgress p = job.control().progress();
        QCOMPARE(p.fraction, 1.0);
        QCOMPARE(p.stage, std::string("half"));
        QCOMPARE(p.bytesDone, uint64_t(50));
        QCOMPARE(p.bytesTotal, uint64_t(100));
    }

    void bytesDriveFraction()
    {
        JobControl c;
        c.reportBytes(25, 100, "reading");
        QCOMPARE(c.progress().fraction, 0.25);
        c.reportBytes(500, 100); // clamped, stage kept
        QCOMPARE(c.progress().fraction, 1.0);
        QCOMPARE(c.progress().bytesDone, uint64_t(100));
        QCOMPARE(c.progress().stage, std::string("reading"));
        c.report(-3.0);
        QCOMPARE(c.progress().fraction, 0.0);
    }

    void handlersSeeEveryReport()
    {
        std::vector<double> seen;
        JobControl c([&](double f, const std::string&) { seen.push_back(f); });
        c.report(0.5);
        c.reportBytes(3, 4);
        QCOMPARE(seen, (std::vector<double>{0.5, 0.75}));
        uint64_t bytes = 0;
        JobControl full([&](const JobProgress& p) { bytes = p.bytesDone; });
        full.reportBytes(7, 9);
        QCOMPARE(bytes, uint64_t(7));
    }

    // Cancel has one meaning: a cancel requested before the job finished is JobStatus::Cancelled, whether
    // the work threw CancelledError, returned early, or even completed.
    void cancelHasOneMeaning()
    {
        FunctionJob throws("t", [](JobControl& c) {
            c.cancel();
            c.throwIfCancelled();
            QFAIL("throwIfCancelled returned");
        });
        QCOMPARE(throws.run(), JobStatus::Cancelled);

        FunctionJob returnsEarly("r", [](JobControl& c) { c.cancel(); });
        QCOMPARE(returnsEarly.run(), JobStatus::Cancelled);

        FunctionJob before("b", [](JobControl&) {});
        before.cancel();
        QCOMPARE(before.run(), JobStatus::Cancelled);
        QVERIFY(before.errorMessage().empty());

        // A CancelledError thrown by a nested call counts as cancel too, not as a failure.
        FunctionJob nested("n", [](JobControl&) { throw CancelledError(); });
        QCOMPARE(nested.run(), JobStatus::Cancelled);
    }

    void errorsAreTyped()
    {
        FunctionJob format("f", [](JobControl&) {
            throw FormatError(ErrorCode::Truncated, "m.gguf", "tensor_count", 16, "file ends");
        });
        QCOMPARE(format.run(), JobStatus::Failed);
        QCOMPARE(format.errorCode(), ErrorCode::Truncated);
        QCOMPARE(QString::fromStdString(format.errorMessage()),
                 QStringLiteral("m.gguf: tensor_count at byte 16: file ends"));

        FunctionJob oom("o", [](JobControl&) { throw std::bad_alloc(); });
        QCOMPARE(oom.run(), JobStatus::Failed);
        QCOMPARE(oom.errorCode(), ErrorCode::Internal);
        QCOMPARE(oom.errorMessage(), std::string("out of memory"));

        FunctionJob other("x", [](JobControl&) { throw std::runtime_error("boom"); });
        QCOMPARE(other.run(), JobStatus::Failed);
        QCOMPARE(other.errorMessage(), std::string("boom"));
    }

    void threadPolicyNeverZero()
    {
        QVERIFY(hardwareThreads() >= 1);
        QCOMPARE(resolveThreads(3), 3u);
        QCOMPARE(resolveThreads(100000), 1024u);
        QCOMPARE(resolveThreads(0), hardwareThreads());
        setDefaultThreads(5);
        QCOMPARE(resolveThreads(0), 5u);
        QCOMPARE(resolveThreads(2), 2u);
        setDefaultThreads(0);
        QCOMPARE(resolveThreads(0), hardwareThreads());
    }

    void runWorkersDrainsSharedWork()
    {
        std::atomic<size_t> next{0};
        std::vector<std::atomic<int>> hits(10000);
        std::atomic<unsigned> maxWorker{0};
        ThreadPool::instance().runWorkers(4, [&](unsigned worker) {
            unsigned seen = maxWorker.load();
            while (worker > seen && !maxWorker.compare_exchange_weak(seen, worker)) {
            }
            for (size_t i; (i = next.fetch_add(1)) < hits.size();)
                hits[i].fetch_add(1);
        });
        for (auto& h : hits)
            QCOMPARE(h.load(), 1);
        QVERIFY(maxWorker.load() < 4);
    }

    void runWorkersRethrowsFirstFailure()
    {
        std::atomic<int> started{0};
        bool caught = false;
        try {
            ThreadPool::instance().runWorkers(3, [&](unsigned worker) {
                ++started;
                if (worker == 0)
                    throw Error(ErrorCode::BadValue, "worker zero failed");
            });
        } catch (const Error& e) {
            caught = e.code() == ErrorCode::BadValue;
        }
        QVERIFY(caught);
        QVERIFY(started.load() >= 1);
    }

    // Workers inside workers, and more jobs than cores, must not deadlock: every caller participates.
    void nestedAndConcurrentNeverDeadlock()
    {
        std::atomic<int> leaves{0};
        std::counting_semaphore<16> finished(0);
        for (int j = 0; j < 6; ++j) {
            ThreadPool::instance().startJob([&] {
                std::atomic<int> outer{0};
                ThreadPool::instance().runWorkers(3, [&](unsigned) {
                    while (outer.fetch_add(1) < 4) {
                        std::atomic<int> inner{0};
                        ThreadPool::instance().runWorkers(3, [&](unsigned) {
                            while (inner.fetch_add(1) < 8)
                                leaves.fetch_add(1);
                        });
                    }
                });
                finished.release();
            });
        }
        for (int j = 0; j < 6; ++j)
            QVERIFY(finished.try_acquire_for(std::chrono::seconds(60)));
        QCOMPARE(leaves.load(), 6 * 4 * 8);
    }

    // A job always gets a thread, even while helpers hold every compute slot.
    void jobsStartWhileWorkersAreBusy()
    {
        std::binary_semaphore release(0), jobRan(0), firstDone(0);
        std::counting_semaphore<64> helpersIn(0);
        const unsigned n = hardwareThreads() + 2;
        ThreadPool::instance().startJob([&] {
            ThreadPool::instance().runWorkers(n, [&](unsigned worker) {
                if (worker == 0) {
                    release.acquire();
                    return;
                }
                helpersIn.release();
            });
            firstDone.release();
        });
        ThreadPool::instance().startJob([&] { jobRan.release(); });
        QVERIFY(jobRan.try_acquire_for(std::chrono::seconds(60)));
        release.release();
        // The semaphores live on this stack: wait for the first job before they go.
        QVERIFY(firstDone.try_acquire_for(std::chrono::seconds(60)));
    }

    void queueHandsOverEverything()
    {
        ResultQueue<int> q;
        ThreadPool::instance().runWorkers(2, [&](unsigned w) {
            for (int i = 0; i < 1000; ++i)
                q.push(int(w) * 1000 + i);
        });
        std::vector<int> all = q.take();
        QVERIFY(q.take().empty());
        std::sort(all.begin(), all.end());
        QVERIFY(all.size() == 1000 || all.size() == 2000); // the helper may be skipped when worker 0 is quick
        for (size_t i = 0; i < all.size(); ++i)
            QCOMPARE(all[i], int((i / 1000) * 1000 + i % 1000));
    }
};

QTEST_APPLESS_MAIN(TestJob)
#include "tst_job.moc"
