#pragma once
// quantscope-cli subcommands. Each command file defines one CliCommand and registers it with a static
// CliRegistrar; main() dispatches on the first argument. Commands print JSON to stdout with --json, text
// otherwise; errors go to stderr with a non-zero exit code (1; 130 when cancelled, as after Ctrl-C).

#include <QJsonObject>
#include <QStringList>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

class QCommandLineParser;

namespace qs {
class Job;
struct JobProgress;
}

struct CliCommand {
    const char* name;
    const char* synopsis; // e.g. "inspect PATH [--json]"
    const char* summary;
    // Adds the command's options; the parser already has --help.
    std::function<void(QCommandLineParser&)> setup;
    // Runs with the parsed options; returns the process exit code.
    std::function<int(QCommandLineParser&)> run;
    // A command that computes (statistics, sensitivity, a budget fit, an estimate) takes the one shared
    // `--threads N` option: main() adds it, shows it in the usage line and applies it with
    // qs::setDefaultThreads() before run(), so every computation of the command resolves to it.
    bool computes = false;
};

std::vector<CliCommand>& cliCommands();

struct CliRegistrar {
    explicit CliRegistrar(CliCommand command) { cliCommands().push_back(std::move(command)); }
};

namespace cli {
// Prints a JSON document (indented) to stdout.
void printJson(const QJsonObject& object);
void printJson(const class QJsonArray& array);
// Prints "quantscope-cli: <message>" to stderr and returns the exit code for errors (1).
int fail(const QString& message);
// Runs `body`, turning qs::Error and std::exception into fail(); returns body's exit code otherwise.
// A qs::CancelledError returns kExitCancelled.
int guarded(const std::function<int()>& body);

// 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C.
constexpr int kExitCancelled = 130;

// The shared --threads option of computing commands (CliCommand::computes) and its usage text.
void addThreadsOption(QCommandLineParser& parser);
inline constexpr const char* kThreadsSynopsis = " [--threads N]";
// Applies --threads when given: N must be a whole number from 1 to 1024. Returns 0, or fail()'s exit code.
int applyThreadsOption(const QCommandLineParser& parser);

// Runs the job on this thread while its progress is printed to stderr under `label`; Ctrl-C cancels it.
// Maps its status to the exit code: 0 succeeded, 1 failed (its typed message on stderr), kExitCancelled.
int runJob(qs::Job& job, const QString& label);
// A progress printer for stderr that shows a bar (with bytes and time left when the job counts bytes)
// once work has run for more than a second, on a terminal only: pipes and logs get no progress lines.
class ProgressPrinter {
public:
    explicit ProgressPrinter(QString label);
    ~ProgressPrinter();
    void update(double fraction, const std::string& stage);
    void update(const qs::JobProgress& progress);

private:
    QString m_label;
    qint64 m_start;
    bool m_tty;
    bool m_shown = false;
    int m_lastPercent = -1;
    std::string m_lastStage;
};
QString toQString(const std::string& s);

// Human-readable tables: names from files are shown with control characters escaped (a tensor name holding
// a terminal escape sequence must not reach the terminal raw), and columns are padded by characters, not
// bytes ("σ" is two bytes of UTF-8).
std::string shown(std::string_view text);
int displayWidth(std::string_view utf8);
std::string padRight(std::string_view utf8, int width);
std::string padLeft(std::string_view utf8, int width);
} // namespace cli
