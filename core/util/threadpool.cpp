#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>

namespace qs {

namespace {
std::atomic<unsigned> g_defaultThreads{0}; // 0: hardware
}

unsigned hardwareThreads()
{
    return std::max(1u, std::thread::hardware_concurrency());
}

void setDefaultThreads(unsigned threads)
{
    g_defaultThreads.store(std::min(threads, 1024u), std::memory_order_relaxed);
}

unsigned defaultThreads()
{
    const unsigned t = g_defaultThreads.load(std::memory_order_relaxed);
    return t ? t : hardwareThreads();
}

unsigned resolveThreads(unsigned requested)
{
    return requested ? std::min(requested, 1024u) : defaultThreads();
}

ThreadPool& ThreadPool::instance()
{
    static ThreadPool pool;
    return pool;
}

ThreadPool::ThreadPool() = default;

ThreadPool::~ThreadPool()
{
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
        threads.swap(m_threads);
    }
    m_wake.notify_all();
    for (auto& t : threads)
        t.join();
}

size_t ThreadPool::threadCount() const
{
    std::lock_guard lock(m_mutex);
    return m_threads.size();
}

void ThreadPool::startJob(std::function<void()> task)
{
    post({std::move(task), false});
}

void ThreadPool::post(Task task)
{
    std::unique_lock lock(m_mutex);
    const bool compute = task.compute;
    if (compute)
        ++m_busyCompute; // queued or running helpers
    // Jobs go first: a thread takes a queued job before any queued helper.
    if (compute)
        m_tasks.push_back(std::move(task));
    else
        m_tasks.push_front(std::move(task));
    const size_t helperCap = std::max(hardwareThreads(), defaultThreads());
    if (m_idle >= m_tasks.size()) {
        lock.unlock();
        m_wake.notify_one();
        return;
    }
    // No idle thread for it: a job always gets one; a helper only while helpers stay under the cap
    // (otherwise it waits for a thread, or is skipped when its caller finishes first).
    if (!compute || m_busyCompute <= helperCap)
        m_threads.emplace_back([this] { threadMain(); });
}

void ThreadPool::threadMain()
{
    std::unique_lock lock(m_mutex);
    for (;;) {
        ++m_idle;
        m_wake.wait(lock, [this] { return m_stop || !m_tasks.empty(); });
        --m_idle;
        if (m_tasks.empty())
            return; // stopping
        Task task = std::move(m_tasks.front());
        m_tasks.pop_front();
        lock.unlock();
        task.run(); // tasks catch their own exceptions (startJob's are Job::run(), which never throws)
        lock.lock();
        if (task.compute)
            --m_busyCompute;
    }
}

void ThreadPool::runWorkers(unsigned workers, const std::function<void(unsigned)>& body)
{
    if (workers <= 1) {
        body(0);
        return;
    }
    struct Batch {
        std::mutex mutex;
        std::condition_variable done;
        unsigned nextWorker = 1; // guarded by mutex
        unsigned running = 0;    // guarded by mutex
        bool closed = false;     // guarded by mutex
        std::exception_ptr failure;
        const std::function<void(unsigned)>* body = nullptr; // valid while !closed or running > 0
    };
    auto batch = std::make_shared<Batch>();
    batch->body = &body;
    auto record = [](Batch& b) {
        std::lock_guard lock(b.mutex);
        if (!b.failure)
            b.failure = std::current_exception();
    };
    for (unsigned i = 1; i < workers; ++i) {
        post({[batch, record] {
                  unsigned id = 0;
                  {
                      std::lock_guard lock(batch->mutex);
                      if (batch->closed)
                          return; // the others finished the work before this helper started
                      id = batch->nextWorker++;
                      ++batch->running;
                  }
                  try {
                      (*batch->body)(id);
                  } catch (...) {
                      record(*batch);
                  }
                  {
                      std::lock_guard lock(batch->mutex);
                      --batch->running;
                  }
                  batch->done.notify_all();
              },
              true});
    }
    try {
        body(0);
    } catch (...) {
        record(*batch);
    }
    std::unique_lock lock(batch->mutex);
    batch->closed = true;
    batch->done.wait(lock, [&] { return batch->running == 0; });
    if (batch->failure)
        std::rethrow_exception(batch->failure);
}

} // namespace qs
