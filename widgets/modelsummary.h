#pragma once
// The model summary panel: what was opened (format, files), the architecture from config.json / GGUF
// keys, and the size figures a user compares against a GPU (parameters, bytes, bits per weight, dtype mix).

#include "core/model/model.h"

#include <QString>
#include <QWidget>

#include <memory>
#include <vector>

class QFormLayout;
class QLabel;

namespace qs {

struct SummaryRow {
    QString section; // "Model", "Architecture", "Size", "Storage"
    QString key;
    QString value;
    QString toolTip;
};

// The rows the panel shows, computed without widgets so tests can check them.
std::vector<SummaryRow> summaryRows(const Model& model);

class ModelSummaryWidget final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ModelSummaryWidget)

public:
    explicit ModelSummaryWidget(QWidget* parent = nullptr);
    void setModel(std::shared_ptr<const Model> model);
    // The value shown for key (e.g. "Parameters"), empty when absent; used by tests.
    QString value(const QString& key) const;

private:
    void rebuild();

    std::shared_ptr<const Model> m_model;
    QWidget* m_content = nullptr;
    std::vector<SummaryRow> m_rows;
};

} // namespace qs
