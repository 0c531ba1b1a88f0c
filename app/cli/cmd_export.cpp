// quantscope-cli export: hand a plan to the tool that quantizes (llama.cpp, GPTQModel, llm-compressor,
// compressed-tensors) or re-save it as plan JSON.
#include "app/cli/command.h"
#include "core/plan/export.h"
#include "core/plan/exportfix.h"
#include "core/plan/planio.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cstdio>

namespace {

int runExport(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("export needs exactly one plan.json"));
    const QString to = parser.value(QStringLiteral("to"));
    auto target = qs::exportTargetFromName(to.toStdString());
    if (!target)
        return cli::fail(
            QStringLiteral("--to needs llamacpp, gptqmodel, llmcompressor, compressed-tensors or json"));
    const qs::Plan plan = qs::loadPlan(pos[0].toStdString());
    qs::ExportResult result;
    try {
        result = qs::exportPlan(plan, *target);
    } catch (const qs::ExportError& e) {
        std::fprintf(stderr, "quantscope-cli: %s cannot express this plan (%s):\n",
                     qs::exportTargetName(*target), qs::describeProblemCount(e.problems()).c_str());
        for (const auto& p : e.problems())
            std::fprintf(stderr, "  %s%s: %s\n", cli::shown(p.tensor).c_str(),
                         p.format.empty() ? "" : (" (" + p.format + ")").c_str(), p.reason.c_str());
        return 3;
    }
    if (parser.isSet(QStringLiteral("out"))) {
        qs::writeExport(result, parser.value(QStringLiteral("out")).toStdString());
        std::fprintf(stderr, "wrote %s\n", qPrintable(parser.value(QStringLiteral("out"))));
    } else {
        std::fwrite(result.text.data(), 1, result.text.size(), stdout);
    }
    for (const auto& c : result.commands)
        std::fprintf(stderr, "use: %s\n", c.c_str());
    for (const auto& n : result.notes)
        std::fprintf(stderr, "note: %s\n", n.c_str());
    return 0;
}

const CliRegistrar exportCommand(
    {"export", "export plan.json --to llamacpp|gptqmodel|llmcompressor|compressed-tensors|json [--out F]",
     "write a plan in a quantization tool's own syntax",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("to"), QStringLiteral("Target tool."), QStringLiteral("TARGET")});
         p.addOption({QStringLiteral("out"), QStringLiteral("Write here (atomically) instead of stdout."),
                      QStringLiteral("FILE")});
         p.addPositionalArgument(QStringLiteral("PLAN"), QStringLiteral("A plan saved by 'plan --out'."));
     },
     runExport});

} // namespace
