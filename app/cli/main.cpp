// quantscope-cli: every capability of the workbench, headless, with machine-readable output.
#include "app/cli/command.h"

#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/strings.h"
#include "core/util/threadpool.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDateTime>
#include <QJsonArray>
#include <QJsonDocument>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

std::vector<CliCommand>& cliCommands()
{
    static std::vector<CliCommand> commands;
    return commands;
}

namespace cli {

QString toQString(const std::string& s) { return QString::fromStdString(s); }

void printJson(const QJsonObject& object)
{
    const QByteArray bytes = QJsonDocument(object).toJson(QJsonDocument::Indented);
    std::fwrite(bytes.constData(), 1, static_cast<size_t>(bytes.size()), stdout);
}

void printJson(const QJsonArray& array)
{
    const QByteArray bytes = QJsonDocument(array).toJson(QJsonDocument::Indented);
    std::fwrite(bytes.constData(), 1, static_cast<size_t>(bytes.size()), stdout);
}

int fail(const QString& message)
{
    // Messages quote names from files: escape their control characters, line by line.
    const std::string raw = message.toStdString();
    std::string text;
    bool first = true;
    for (const auto& line : qs::split(raw, '\n')) {
        text += (first ? "" : "\n") + shown(line);
        first = false;
    }
    std::fprintf(stderr, "quantscope-cli: %s\n", text.c_str());
    return 1;
}

std::string shown(std::string_view text)
{
    return qs::escapeControl(text);
}

int displayWidth(std::string_view utf8)
{
    int n = 0;
    for (unsigned char c : utf8)
        n += (c & 0xC0) != 0x80; // count lead bytes: one per code point
    return n;
}

std::string padRight(std::string_view utf8, int width)
{
    return std::string(utf8) + std::string(size_t(std::max(0, width - displayWidth(utf8))), ' ');
}

std::string padLeft(std::string_view utf8, int width)
{
    return std::string(size_t(std::max(0, width - displayWidth(utf8))), ' ') + std::string(utf8);
}

int guarded(const std::function<int()>& body)
{
    try {
        return body();
    } catch (const qs::CancelledError&) {
        fail(QStringLiteral("cancelled"));
        return kExitCancelled;
    } catch (const qs::Error& e) {
        return fail(QString::fromUtf8(e.what()));
    } catch (const std::exception& e) {
        return fail(QStringLiteral("internal error: ") + QString::fromUtf8(e.what()));
    }
}

ProgressPrinter::ProgressPrinter(QString label)
    : m_label(std::move(label)), m_start(QDateTime::currentMSecsSinceEpoch()), m_tty(isatty(STDERR_FILENO) == 1)
{
}

ProgressPrinter::~ProgressPrinter()
{
    if (m_shown)
        std::fputc('\n', stderr);
}

void ProgressPrinter::update(double fraction, const std::string& stage)
{
    qs::JobProgress p;
    p.fraction = fraction;
    p.stage = stage;
    update(p);
}

namespace {
QString gibText(uint64_t bytes)
{
    return QString::number(double(bytes) / double(uint64_t{1} << 30), 'f', 2);
}
} // namespace

void ProgressPrinter::update(const qs::JobProgress& p)
{
    // Only on a terminal: pipes and logs get the result alone. Nothing for the first second.
    if (!m_tty)
        return;
    const qint64 elapsedMs = QDateTime::currentMSecsSinceEpoch() - m_start;
    if (!m_shown && elapsedMs < 1000)
        return;
    const int percent = static_cast<int>(std::clamp(p.fraction, 0.0, 1.0) * 100.0 + 0.5);
    if (percent == m_lastPercent && p.stage == m_lastStage)
        return;
    m_shown = true;
    m_lastPercent = percent;
    m_lastStage = p.stage;
    QString detail;
    if (p.bytesTotal > 0) {
        detail = QStringLiteral(" %1 of %2 GiB").arg(gibText(p.bytesDone), gibText(p.bytesTotal));
        const double seconds = double(elapsedMs) / 1000.0;
        if (p.bytesDone > 0 && seconds > 0) {
            const double rate = double(p.bytesDone) / seconds;
            detail += QStringLiteral(", %1 s left").arg(double(p.bytesTotal - p.bytesDone) / rate, 0, 'f', 0);
        }
    }
    const int width = 30, filled = percent * width / 100;
    // \r back to the start, ESC[K clears what a longer previous line left behind.
    std::fprintf(stderr, "\r%s [%s%s] %3d%%%s %s\033[K", qPrintable(m_label), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), percent, qPrintable(detail), p.stage.c_str());
    std::fflush(stderr);
}

void addThreadsOption(QCommandLineParser& parser)
{
    parser.addOption({QStringLiteral("threads"),
                      QStringLiteral("Worker threads, at least 1 (default: all hardware threads)."),
                      QStringLiteral("N")});
}

int applyThreadsOption(const QCommandLineParser& parser)
{
    if (!parser.isSet(QStringLiteral("threads")))
        return 0;
    bool ok = false;
    const uint threads = parser.value(QStringLiteral("threads")).toUInt(&ok);
    if (!ok || threads < 1 || threads > 1024)
        return fail(QStringLiteral("--threads needs a whole number from 1 to 1024"));
    qs::setDefaultThreads(threads);
    return 0;
}

namespace {

// The job Ctrl-C cancels. Setting a lock-free atomic flag is all the handler does (async-signal-safe).
std::atomic<qs::Job*> g_runningJob{nullptr};

extern "C" void cancelRunningJob(int)
{
    if (qs::Job* job = g_runningJob.load())
        job->cancel();
}

// For tests of Ctrl-C (QUANTSCOPE_CLI_TEST_HOLD set): at its first progress report the job announces
// "quantscope-cli: holding" on stderr and waits there until it is cancelled, so that a test can interrupt
// a running job at a known point instead of racing the machine's speed.
void holdAtFirstReport(qs::Job& job)
{
    auto held = std::make_shared<std::atomic<bool>>(false);
    job.control().setProgressHandler([held, &job](const qs::JobProgress&) {
        if (held->exchange(true))
            return;
        std::fprintf(stderr, "quantscope-cli: holding\n");
        std::fflush(stderr);
        while (!job.control().cancelled())
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
}

} // namespace

int runJob(qs::Job& job, const QString& label)
{
    // The job runs here; a pool thread polls its progress, so that the core never calls into the printer.
    struct Watch {
        std::mutex mutex;
        std::condition_variable wake;
        bool done = false;   // guarded by mutex
        bool exited = false; // guarded by mutex
    };
    auto watch = std::make_shared<Watch>();
    qs::ThreadPool::instance().startJob([watch, &job, label] {
        std::unique_lock lock(watch->mutex);
        {
            ProgressPrinter printer(label);
            while (!watch->done) {
                watch->wake.wait_for(lock, std::chrono::milliseconds(100));
                printer.update(job.control().progress());
            }
        }
        watch->exited = true;
        watch->wake.notify_all();
    });
    if (qEnvironmentVariableIsSet("QUANTSCOPE_CLI_TEST_HOLD"))
        holdAtFirstReport(job);
    g_runningJob.store(&job);
    const auto previous = std::signal(SIGINT, cancelRunningJob);
    const qs::JobStatus status = job.run();
    std::signal(SIGINT, previous == SIG_ERR ? SIG_DFL : previous);
    g_runningJob.store(nullptr);
    {
        std::unique_lock lock(watch->mutex);
        watch->done = true;
        watch->wake.notify_all();
        watch->wake.wait(lock, [&] { return watch->exited; });
    }
    switch (status) {
    case qs::JobStatus::Succeeded:
        return 0;
    case qs::JobStatus::Cancelled:
        fail(QStringLiteral("cancelled"));
        return kExitCancelled;
    default:
        return fail(QString::fromStdString(job.errorMessage()));
    }
}

} // namespace cli

static void printUsage()
{
    std::fprintf(stderr, "usage: quantscope-cli COMMAND [options]\n\ncommands:\n");
    std::vector<const CliCommand*> sorted;
    for (const auto& c : cliCommands())
        sorted.push_back(&c);
    std::sort(sorted.begin(), sorted.end(),
              [](const CliCommand* a, const CliCommand* b) { return std::strcmp(a->name, b->name) < 0; });
    for (const auto* c : sorted)
        std::fprintf(stderr, "  %-12s %s\n", c->name, c->summary);
    std::fprintf(stderr, "\nRun 'quantscope-cli COMMAND --help' for a command's options.\n");
}

int main(int argc, char* argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("quantscope-cli"));
    QCoreApplication::setOrganizationName(QStringLiteral("Quantscope"));
    QCoreApplication::setApplicationVersion(QStringLiteral(QS_CLI_VERSION));

    QStringList args = QCoreApplication::arguments();
    if (args.size() < 2 || args[1] == QLatin1String("--help") || args[1] == QLatin1String("-h") ||
        args[1] == QLatin1String("help")) {
        printUsage();
        return args.size() < 2 ? 2 : 0;
    }
    if (args[1] == QLatin1String("--version")) {
        std::printf("quantscope-cli %s\n", QS_CLI_VERSION);
        return 0;
    }
    const QString name = args[1];
    for (auto& command : cliCommands()) {
        if (name != QLatin1String(command.name))
            continue;
        QCommandLineParser parser;
        parser.setApplicationDescription(QString::fromUtf8(command.summary));
        parser.addHelpOption();
        if (command.setup)
            command.setup(parser);
        if (command.computes)
            cli::addThreadsOption(parser);
        args.removeAt(1);
        args[0] = QStringLiteral("quantscope-cli ") + name;
        if (!parser.parse(args))
            return cli::fail(parser.errorText());
        if (parser.isSet(QStringLiteral("help"))) {
            // Our synopsis replaces QCommandLineParser's generic "Usage:" line.
            QString help = parser.helpText();
            if (help.startsWith(QLatin1String("Usage:")))
                help = help.mid(help.indexOf(QLatin1Char('\n')) + 1);
            std::printf("usage: quantscope-cli %s%s\n%s", command.synopsis,
                        command.computes ? cli::kThreadsSynopsis : "", qPrintable(help));
            return 0;
        }
        if (command.computes)
            if (const int code = cli::applyThreadsOption(parser))
                return code;
        return cli::guarded([&] { return command.run(parser); });
    }
    printUsage();
    return cli::fail(QStringLiteral("unknown command '%1'").arg(name));
}
