// quantscope-cli tokenize / generate: the model's tokenizer and greedy decoding with the built-in forward
// pass (core/text/tokenizer.h, core/infer/forward.h), optionally with a plan's fake quantization.
#include "app/cli/command.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/plan/planio.h"
#include "core/text/tokenizer.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/job.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cstdio>

namespace {

constexpr uint64_t kMaxTextBytes = uint64_t{1} << 30;

qs::Tokenizer modelTokenizer(const qs::Model& model)
{
    auto tokenizer = qs::Tokenizer::fromModel(model);
    if (!tokenizer)
        throw qs::Error(qs::ErrorCode::BadValue, "the model carries no vocabulary (no tokenizer to use)");
    return std::move(*tokenizer);
}

QJsonArray idArray(const std::vector<int32_t>& ids)
{
    QJsonArray a;
    for (int32_t id : ids)
        a.append(id);
    return a;
}

void printIds(const std::vector<int32_t>& ids)
{
    for (size_t i = 0; i < ids.size(); ++i)
        std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
}

int runTokenize(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    const bool fromFile = parser.isSet(QStringLiteral("text"));
    if (pos.size() != (fromFile ? 1 : 2))
        return cli::fail(QStringLiteral("tokenize needs MODEL and either --text FILE or one STRING"));
    const std::string text =
        fromFile
            ? qs::readRegularFile(parser.value(QStringLiteral("text")).toStdString(), kMaxTextBytes, "text")
            : pos[1].toStdString();
    const auto model = qs::openModel(pos[0].toStdString());
    const qs::Tokenizer tokenizer = modelTokenizer(*model);
    const bool bos = !parser.isSet(QStringLiteral("no-bos")) && tokenizer.addBosByDefault();
    const std::vector<int32_t> ids = tokenizer.encode(text, bos);
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject o;
        o[QStringLiteral("ids")] = idArray(ids);
        o[QStringLiteral("count")] = static_cast<qint64>(ids.size());
        cli::printJson(o);
        return 0;
    }
    printIds(ids);
    return 0;
}

int runGenerate(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("generate needs exactly one MODEL"));
    bool ok = false;
    const uint n = parser.value(QStringLiteral("n")).toUInt(&ok);
    if (!parser.isSet(QStringLiteral("n")) || !ok || n < 1 || n > 1000000)
        return cli::fail(QStringLiteral("generate needs -n N, a whole number from 1 to 1000000"));
    auto model = qs::openModel(pos[0].toStdString());
    const qs::Tokenizer tokenizer = modelTokenizer(*model);
    std::vector<int32_t> prompt;
    if (parser.isSet(QStringLiteral("prompt")))
        prompt = tokenizer.encode(parser.value(QStringLiteral("prompt")).toStdString(),
                                  tokenizer.addBosByDefault());
    else if (tokenizer.bos())
        prompt = {*tokenizer.bos()};
    if (prompt.empty())
        return cli::fail(QStringLiteral("the vocabulary has no BOS token: give a --prompt"));
    std::optional<qs::Plan> plan;
    if (parser.isSet(QStringLiteral("plan")))
        plan = qs::loadPlan(parser.value(QStringLiteral("plan")).toStdString());
    std::optional<int32_t> stop;
    if (!parser.isSet(QStringLiteral("ignore-eos")))
        stop = tokenizer.eos();

    std::vector<int32_t> out;
    qs::FunctionJob job("Generating", [&](qs::JobControl& control) {
        qs::ForwardOptions options;
        options.plan = plan ? &*plan : nullptr;
        qs::Transformer transformer(model, options);
        size_t layers = 0;
        transformer.setLinearHook([&](const qs::LinearInput&) {
            control.throwIfCancelled();
            control.report(
                std::min(1.0, double(++layers) / (double(n) * (transformer.config().layers * 7.0 + 1))),
                "generating");
        });
        qs::KvCache cache;
        out = transformer.generateGreedy(prompt, n, cache, stop);
    });
    if (const int code = cli::runJob(job, QStringLiteral("generating")))
        return code;
    const std::string text = tokenizer.decode(out);
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject o;
        o[QStringLiteral("prompt_ids")] = idArray(prompt);
        o[QStringLiteral("ids")] = idArray(out);
        o[QStringLiteral("text")] = QString::fromUtf8(text.data(), static_cast<qsizetype>(text.size()));
        cli::printJson(o);
        return 0;
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
    return 0;
}

const CliRegistrar
    tokenize({"tokenize", "tokenize MODEL (--text FILE | STRING) [--no-bos] [--json]",
              "token ids of a text with the model's own tokenizer (BOS first where the vocabulary adds it)",
              [](QCommandLineParser& p) {
                  p.addOption({QStringLiteral("text"), QStringLiteral("Read the text from FILE (UTF-8)."),
                               QStringLiteral("FILE")});
                  p.addOption({QStringLiteral("no-bos"), QStringLiteral("Do not put BOS first.")});
                  p.addOption({QStringLiteral("json"), QStringLiteral("Print the result as JSON.")});
                  p.addPositionalArgument(QStringLiteral("MODEL"),
                                          QStringLiteral("GGUF, or safetensors with tokenizer.json."));
                  p.addPositionalArgument(QStringLiteral("STRING"),
                                          QStringLiteral("The text (unless --text)."));
              },
              runTokenize});

const CliRegistrar generate(
    {"generate", "generate MODEL [--prompt P] -n N [--plan PLAN.json] [--ignore-eos] [--json]",
     "greedy decoding with the built-in forward pass (from BOS alone without a prompt)",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("prompt"),
                      QStringLiteral("Text to continue (tokenized with BOS first)."), QStringLiteral("P")});
         p.addOption({QStringLiteral("n"), QStringLiteral("Tokens to generate."), QStringLiteral("N")});
         p.addOption({QStringLiteral("plan"), QStringLiteral("Fake-quantize the tensors the plan assigns."),
                      QStringLiteral("PLAN.json")});
         p.addOption({QStringLiteral("ignore-eos"), QStringLiteral("Do not stop at the end-of-text token.")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print the result as JSON.")});
         p.addPositionalArgument(QStringLiteral("MODEL"),
                                 QStringLiteral("GGUF, or safetensors with tokenizer.json."));
     },
     runGenerate,
     /*computes=*/true});

} // namespace
