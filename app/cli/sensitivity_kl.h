#pragma once
// `quantscope-cli sensitivity --measure kl`: measured end-to-end sensitivity (core/infer/klsensitivity.h).
#include <QString>
#include <string>
#include <vector>

class QCommandLineParser;

namespace cli {

// Adds --measure, --text, --granularity, --ctx, --tokens, --first-chunk to the sensitivity command.
void addKlSensitivityOptions(QCommandLineParser& parser);
// Whether --measure asks for ΔKL ("kl"); fills *error when --measure names something unknown.
bool wantsKlSensitivity(const QCommandLineParser& parser, QString* error);
// Runs the ΔKL measurement of the model at `path` over the given formats (empty: the default list).
int runKlSensitivity(const QCommandLineParser& parser, const QString& path, const std::vector<std::string>& formats);

} // namespace cli
