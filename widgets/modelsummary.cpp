#include "widgets/modelsummary.h"

#include "widgets/elidedlabel.h"
#include "widgets/formatting.h"

#include <QFormLayout>
#include <QGroupBox>
#include <QLabel>
#include <QLineEdit>
#include <QScrollArea>
#include <QVBoxLayout>

#include <map>

namespace qs {

namespace {

QString orDash(uint64_t value)
{
    return value ? formatExact(value) : QStringLiteral("—");
}

QString fileName(const std::filesystem::path& path)
{
    auto p = path;
    if (!p.has_filename())
        p = p.parent_path();
    return QString::fromStdString(p.filename().string());
}

} // namespace

std::vector<SummaryRow> summaryRows(const Model& model)
{
    std::vector<SummaryRow> rows;
    const QString general = QStringLiteral("Model");
    QString displayName = fileName(model.path());
    if (auto it = model.metadata().find("general.name"); it != model.metadata().end()) {
        if (const auto* s = std::get_if<std::string>(&it->second.value); s && !s->empty())
            displayName = QString::fromStdString(*s);
    }
    rows.push_back({general, QObject::tr("Name"), displayName, {}});
    rows.push_back({general, QObject::tr("Format"), QString::fromLatin1(modelFormatName(model.format())), {}});
    const QString path = QString::fromStdString(model.path().string());
    rows.push_back({general, QObject::tr("Path"), path, path});
    QStringList files;
    for (const auto& f : model.files())
        if (f)
            files << QString::fromStdString(f->path().string());
    rows.push_back({general, QObject::tr("Files"), QString::number(files.size()), files.join(QLatin1Char('\n'))});
    rows.push_back({general, QObject::tr("Tensors"), formatExact(model.tensors().size()), {}});
    if (!model.warnings().empty()) {
        // What the loader accepted but flagged (a Keras layer without its group, an unusable config.json).
        QStringList all;
        for (const auto& w : model.warnings())
            all << QString::fromStdString(w);
        rows.push_back({general, QObject::tr("Warnings"),
                        all.size() == 1 ? all.front() : QObject::tr("%1 — and %2 more").arg(all.front()).arg(all.size() - 1),
                        all.join(QLatin1Char('\n'))});
    }

    const ModelConfig& c = model.config();
    const QString arch = QStringLiteral("Architecture");
    rows.push_back({arch, QObject::tr("Architecture"),
                    c.architecture.empty() ? QStringLiteral("—") : QString::fromStdString(c.architecture), {}});
    rows.push_back({arch, QObject::tr("Layers"), orDash(c.layers), {}});
    rows.push_back({arch, QObject::tr("Hidden size"), orDash(c.hiddenSize), {}});
    rows.push_back({arch, QObject::tr("Intermediate size"), orDash(c.intermediateSize), {}});
    rows.push_back({arch, QObject::tr("Attention heads"), orDash(c.heads), {}});
    rows.push_back({arch, QObject::tr("KV heads"), orDash(c.kvHeads),
                    c.kvHeads && c.heads && c.kvHeads < c.heads
                        ? QObject::tr("Grouped-query attention: %1 query heads per KV head").arg(c.heads / c.kvHeads)
                        : QString()});
    rows.push_back({arch, QObject::tr("Head dim"), orDash(c.headDim), {}});
    rows.push_back({arch, QObject::tr("Vocabulary"), orDash(c.vocabSize), {}});
    rows.push_back({arch, QObject::tr("Context length"), orDash(c.contextLength), {}});
    rows.push_back({arch, QObject::tr("Tied embeddings"), c.tiedEmbeddings ? QObject::tr("yes") : QObject::tr("no"), {}});
    if (c.slidingWindow)
        rows.push_back({arch, QObject::tr("Sliding window"), formatExact(c.slidingWindow), {}});
    if (c.experts)
        rows.push_back({arch, QObject::tr("Experts"), QObject::tr("%1 (%2 active)").arg(c.experts).arg(c.expertsUsed), {}});

    const QString size = QStringLiteral("Size");
    const uint64_t params = model.parameterCount();
    const uint64_t bytes = model.totalBytes();
    rows.push_back({size, QObject::tr("Parameters"), formatCount(params),
                    QObject::tr("%1 parameters").arg(formatExact(params))});
    rows.push_back({size, QObject::tr("Total size"), formatBytes(bytes), QObject::tr("%1 bytes").arg(formatExact(bytes))});
    rows.push_back({size, QObject::tr("Bits per weight"),
                    params ? QString::number(model.bitsPerWeight(), 'f', 2) : QStringLiteral("—"), {}});

    struct DTypeTotals {
        int tensors = 0;
        uint64_t params = 0;
        uint64_t bytes = 0;
    };
    std::map<std::string, DTypeTotals> byType;
    for (const auto& t : model.tensors()) {
        auto& d = byType[dtypeName(t.dtype)];
        ++d.tensors;
        d.params += t.elements();
        d.bytes += t.bytes;
    }
    const QString storage = QStringLiteral("Storage");
    for (const auto& [name, d] : byType) {
        const double share = bytes ? 100.0 * double(d.bytes) / double(bytes) : 0.0;
        rows.push_back({storage, QString::fromStdString(name),
                        QStringLiteral("%1, %2 · %3 (%4%)")
                            .arg(countNoun(uint64_t(d.tensors), "tensor", "tensors"), formatCount(d.params),
                                 formatBytes(d.bytes))
                            .arg(share, 0, 'f', 1),
                        {}});
    }
    return rows;
}

ModelSummaryWidget::ModelSummaryWidget(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    rebuild();
}

void ModelSummaryWidget::setModel(std::shared_ptr<const Model> model)
{
    m_model = std::move(model);
    m_rows = m_model ? summaryRows(*m_model) : std::vector<SummaryRow>{};
    rebuild();
}

QString ModelSummaryWidget::value(const QString& key) const
{
    for (const auto& row : m_rows)
        if (row.key == key)
            return row.value;
    return {};
}

void ModelSummaryWidget::rebuild()
{
    delete m_content;
    auto* scroll = new QScrollArea(this);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_content = scroll;
    layout()->addWidget(scroll);

    auto* inner = new QWidget;
    auto* vbox = new QVBoxLayout(inner);
    if (m_rows.empty()) {
        auto* hint = new QLabel(tr("<p><b>No model loaded.</b></p><p>Open a model with <i>File › Open</i>, drop "
                                   "a file or folder on the window, or open the bundled sample model.</p>"
                                   "<p>Formats: safetensors (single or sharded), GGUF, HDF5 / Keras .h5, "
                                   "config.json alone.</p>"),
                                inner);
        hint->setWordWrap(true);
        hint->setAlignment(Qt::AlignTop | Qt::AlignLeft);
        vbox->addWidget(hint);
    }
    QString currentSection;
    QFormLayout* form = nullptr;
    for (const auto& row : m_rows) {
        if (row.section != currentSection || !form) {
            currentSection = row.section;
            auto* box = new QGroupBox(row.section == QLatin1String("Model")          ? tr("Model")
                                      : row.section == QLatin1String("Architecture") ? tr("Architecture")
                                      : row.section == QLatin1String("Size")         ? tr("Size")
                                                                                     : tr("Storage types"),
                                      inner);
            form = new QFormLayout(box);
            form->setLabelAlignment(Qt::AlignLeft);
            form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
            vbox->addWidget(box);
        }
        QWidget* field = nullptr;
        if (row.key == QLatin1String("Path")) {
            // Long paths: elided in the middle, so the root and the file name both stay visible.
            field = new ElidedLabel(row.value);
        } else {
            auto* label = new QLabel(row.value);
            label->setTextInteractionFlags(Qt::TextSelectableByMouse);
            // Wrapped, so that a long value (a warning, a storage summary) is read in full in the narrow dock
            // instead of widening the content past the dock's edge.
            label->setWordWrap(true);
            if (row.key == QLatin1String("Warnings"))
                label->setStyleSheet(QStringLiteral("color: #b35900;"));
            field = label;
        }
        field->setObjectName(QStringLiteral("summary:") + row.key);
        if (!row.toolTip.isEmpty())
            field->setToolTip(row.toolTip);
        auto* keyLabel = new QLabel(row.key + QLatin1Char(':'));
        form->addRow(keyLabel, field);
    }
    vbox->addStretch(1);
    scroll->setWidget(inner);
}

} // namespace qs
