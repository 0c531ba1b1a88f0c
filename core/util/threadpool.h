#pragma once
// The one thread pool of the process, and the one thread policy.
//
// Thread policy: a computation asks resolveThreads(requested) how many workers to use. 0 means the
// process default, which is the hardware thread count unless the user set one (`--threads N` in the CLI,
// a setting in the GUI) with setDefaultThreads(). The answer is never 0 (hardware_concurrency() may
// return 0: that counts as one thread).
//
// Two kinds of work run on the pool:
// - jobs (ThreadPool::startJob): a Job::run() driver. A job always gets a thread at once, so a long job
//   never keeps a short one (a budget solve beside a statistics run) waiting.
// - workers (ThreadPool::runWorkers): the data-parallel part of a job. The caller is worker 0 and the pool
//   lends up to n - 1 more threads, never more compute threads than the hardware has in total across all
//   running jobs. Each worker body must pull work from a shared source until none is left: a helper that
//   starts after the work is gone returns at once, and one that has not started by the time the others
//   are done is skipped, so nested or concurrent calls never deadlock.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qs {

// Hardware threads, at least 1.
unsigned hardwareThreads();
// Sets the process default used when a computation asks for 0 threads; 0 restores the hardware count.
void setDefaultThreads(unsigned threads);
unsigned defaultThreads();
// requested > 0: requested (capped at 1024); 0: defaultThreads(). Never 0.
unsigned resolveThreads(unsigned requested = 0);

class ThreadPool {
public:
    static ThreadPool& instance();

    ThreadPool();
    ~ThreadPool(); // waits for every started task
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Runs task on a pool thread at once (a new thread when none is idle). For job drivers.
    void startJob(std::function<void()> task);

    // Calls body(worker) for worker = 0 .. workers - 1, worker 0 on the calling thread, and returns when
    // every started body has returned. Rethrows the first exception a body threw (the others still finish).
    // See the file comment for the contract on body.
    void runWorkers(unsigned workers, const std::function<void(unsigned worker)>& body);

    // Threads the pool owns now (idle or busy), for tests.
    size_t threadCount() const;

private:
    struct Task {
        std::function<void()> run;
        bool compute = false;
    };
    void post(Task task);
    void threadMain();

    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<Task> m_tasks;          // guarded by m_mutex
    std::vector<std::thread> m_threads; // guarded by m_mutex
    size_t m_idle = 0;                 // guarded by m_mutex
    size_t m_busyCompute = 0;          // guarded by m_mutex: helper bodies running now
    bool m_stop = false;               // guarded by m_mutex
};

} // namespace qs
