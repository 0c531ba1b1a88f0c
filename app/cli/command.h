#pragma once
// quantscope-cli subcommands. Each command file defines one CliCommand and registers it with a static
// CliRegistrar; main() dispatches on the first argument. Commands print JSON to stdout with --json, text
// otherwise; errors go to stderr with a non-zero exit code.

#include <QJsonObject>
#include <QStringList>

#include <functional>
#include <string>
#include <vector>

class QCommandLineParser;

struct CliCommand {
    const char* name;
    const char* synopsis; // e.g. "inspect PATH [--json]"
    const char* summary;
    // Adds the command's options; the parser already has --help.
    std::function<void(QCommandLineParser&)> setup;
    // Runs with the parsed options; returns the process exit code.
    std::function<int(QCommandLineParser&)> run;
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
int guarded(const std::function<int()>& body);
// A progress printer for stderr that shows a bar once work has run for more than a second.
class ProgressPrinter {
public:
    explicit ProgressPrinter(QString label);
    ~ProgressPrinter();
    void update(double fraction, const std::string& stage);

private:
    QString m_label;
    qint64 m_start;
    bool m_shown = false;
    int m_lastPercent = -1;
};
QString toQString(const std::string& s);
} // namespace cli
