// quantscope-cli: every capability of the workbench, headless, with machine-readable output.
#include "app/cli/command.h"

#include "core/util/error.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDateTime>
#include <QJsonArray>
#include <QJsonDocument>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>

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
    std::fprintf(stderr, "quantscope-cli: %s\n", qPrintable(message));
    return 1;
}

int guarded(const std::function<int()>& body)
{
    try {
        return body();
    } catch (const qs::CancelledError&) {
        return fail(QStringLiteral("cancelled"));
    } catch (const qs::Error& e) {
        return fail(QString::fromUtf8(e.what()));
    } catch (const std::exception& e) {
        return fail(QStringLiteral("internal error: ") + QString::fromUtf8(e.what()));
    }
}

ProgressPrinter::ProgressPrinter(QString label)
    : m_label(std::move(label)), m_start(QDateTime::currentMSecsSinceEpoch())
{
}

ProgressPrinter::~ProgressPrinter()
{
    if (m_shown)
        std::fputc('\n', stderr);
}

void ProgressPrinter::update(double fraction, const std::string& stage)
{
    if (!m_shown && QDateTime::currentMSecsSinceEpoch() - m_start < 1000)
        return;
    const int percent = static_cast<int>(fraction * 100.0 + 0.5);
    if (percent == m_lastPercent)
        return;
    m_shown = true;
    m_lastPercent = percent;
    const int width = 30, filled = percent * width / 100;
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %s", qPrintable(m_label), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), percent, stage.c_str());
    std::fflush(stderr);
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
        args.removeAt(1);
        args[0] = QStringLiteral("quantscope-cli ") + name;
        if (!parser.parse(args))
            return cli::fail(parser.errorText());
        if (parser.isSet(QStringLiteral("help"))) {
            // Our synopsis replaces QCommandLineParser's generic "Usage:" line.
            QString help = parser.helpText();
            if (help.startsWith(QLatin1String("Usage:")))
                help = help.mid(help.indexOf(QLatin1Char('\n')) + 1);
            std::printf("usage: quantscope-cli %s\n%s", command.synopsis, qPrintable(help));
            return 0;
        }
        return cli::guarded([&] { return command.run(parser); });
    }
    printUsage();
    return cli::fail(QStringLiteral("unknown command '%1'").arg(name));
}
