#include "widgets/statstableview.h"

#include "core/util/atomicfile.h"
#include "core/util/error.h"

#include "widgets/plotutil.h"
#include "widgets/statsstore.h"
#include "widgets/statstablemodel.h"

#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>

#include <map>
#include <QLineEdit>
#include <QMessageBox>
#include <QBuffer>
#include <QSettings>
#include <QSpinBox>
#include <QTableView>
#include <QToolButton>
#include <QVBoxLayout>

#include <set>

namespace qs {

StatsTableView::StatsTableView(StatsStore* store, QWidget* parent)
    : QWidget(parent), m_store(store), m_model(new StatsTableModel(store, this)), m_proxy(new StatsFilterProxy(this))
{
    m_proxy->setSourceModel(m_model);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* filters = new QHBoxLayout;
    m_name = new QLineEdit;
    m_name->setPlaceholderText(tr("Name (regular expression)"));
    m_name->setClearButtonEnabled(true);
    filters->addWidget(m_name, 2);
    filters->addWidget(new QLabel(tr("Role:")));
    m_role = new QComboBox;
    m_role->setObjectName(QStringLiteral("statsRole"));
    filters->addWidget(m_role);
    filters->addWidget(new QLabel(tr("Blocks:")));
    m_firstBlock = new QSpinBox;
    m_lastBlock = new QSpinBox;
    for (QSpinBox* box : {m_firstBlock, m_lastBlock}) {
        box->setRange(-1, 100000);
        box->setSpecialValueText(tr("any"));
        box->setValue(-1);
        filters->addWidget(box);
    }
    m_firstBlock->setToolTip(tr("First block (any: no block filter)"));
    m_lastBlock->setToolTip(tr("Last block"));
    m_count = new QLabel;
    m_count->setObjectName(QStringLiteral("statsCount"));
    filters->addWidget(m_count, 1);
    auto* exportButton = new QToolButton;
    exportButton->setIcon(toolIcon("document-export", ":/icons/export.svg"));
    exportButton->setText(tr("Export CSV…"));
    exportButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    connect(exportButton, &QToolButton::clicked, this, &StatsTableView::exportCsvDialog);
    filters->addWidget(exportButton);
    layout->addLayout(filters);

    m_table = new QTableView;
    m_table->setObjectName(QStringLiteral("statsTable"));
    m_table->setModel(m_proxy);
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(-1, Qt::AscendingOrder);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_table->setAlternatingRowColors(true);
    m_table->setWordWrap(false);
    m_table->verticalHeader()->setVisible(false);
    m_table->verticalHeader()->setDefaultSectionSize(m_table->fontMetrics().height() + 6);
    m_table->horizontalHeader()->setHighlightSections(false);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Interactive);
    m_table->setColumnWidth(StatsTableModel::NameColumn, 260);
    for (int c = StatsTableModel::RoleColumn; c < StatsTableModel::ColumnCount; ++c)
        m_table->setColumnWidth(c, c == StatsTableModel::RoleColumn ? 90 : (c <= StatsTableModel::DTypeColumn ? 60 : 82));
    layout->addWidget(m_table, 1);

    connect(m_name, &QLineEdit::textChanged, this, &StatsTableView::applyFilters);
    connect(m_role, &QComboBox::currentIndexChanged, this, &StatsTableView::applyFilters);
    connect(m_firstBlock, &QSpinBox::valueChanged, this, &StatsTableView::applyFilters);
    connect(m_lastBlock, &QSpinBox::valueChanged, this, &StatsTableView::applyFilters);
    connect(m_model, &QAbstractItemModel::modelReset, this, &StatsTableView::onModelReset);
    connect(m_proxy, &QAbstractItemModel::rowsInserted, this, &StatsTableView::updateCount);
    connect(m_proxy, &QAbstractItemModel::rowsRemoved, this, &StatsTableView::updateCount);
    connect(m_proxy, &QAbstractItemModel::modelReset, this, &StatsTableView::updateCount);
    connect(m_proxy, &QAbstractItemModel::layoutChanged, this, &StatsTableView::updateCount);
    connect(m_store, &StatsStore::tensorsReady, this, &StatsTableView::updateCount);
    connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this] {
        if (m_selecting)
            return;
        QStringList names;
        for (const QModelIndex& idx : m_table->selectionModel()->selectedRows())
            names << idx.data(StatsTableModel::TensorNameRole).toString();
        emit selectionChanged(names);
    });
    onModelReset();
}

void StatsTableView::onModelReset()
{
    const QSignalBlocker blocker(m_role);
    const QVariant current = m_role->currentData();
    m_role->clear();
    m_role->addItem(tr("all"), QVariant());
    std::set<int> roles;
    int maxBlock = -1;
    if (const auto& model = m_store->model()) {
        for (const auto& t : model->tensors()) {
            roles.insert(int(t.role.role));
            maxBlock = std::max(maxBlock, t.role.block);
        }
    }
    for (int r : roles)
        m_role->addItem(QString::fromLatin1(roleName(TensorRole(r))), r);
    const int keep = m_role->findData(current);
    m_role->setCurrentIndex(keep >= 0 ? keep : 0);
    m_firstBlock->setMaximum(std::max(maxBlock, -1));
    m_lastBlock->setMaximum(std::max(maxBlock, -1));
    applyFilters();
}

void StatsTableView::applyFilters()
{
    const bool valid = m_proxy->setNamePattern(m_name->text());
    m_name->setToolTip(valid ? QString() : tr("Not a valid regular expression: matched literally"));
    const QVariant role = m_role->currentData();
    m_proxy->setRole(role.isValid() ? std::optional<int>(role.toInt()) : std::nullopt);
    int first = m_firstBlock->value(), last = m_lastBlock->value();
    if (first >= 0 && last < 0)
        last = m_lastBlock->maximum();
    if (last >= 0 && first < 0)
        first = 0;
    m_proxy->setBlockRange(first, last);
    updateCount();
}

void StatsTableView::setBlockRange(int first, int last)
{
    m_firstBlock->setValue(first);
    m_lastBlock->setValue(last);
}

void StatsTableView::updateCount()
{
    const int total = m_model->rowCount();
    // Tensors that could not be analysed, grouped by reason: said here, not only in a red row's tooltip.
    std::map<std::string, int> reasons;
    int failed = 0;
    for (int i = 0; i < total; ++i)
        if (const TensorStats* s = m_store->stats(size_t(i)); s && !s->error.empty()) {
            ++failed;
            ++reasons[s->error.size() > 120 ? s->error.substr(0, 117) + "..." : s->error];
        }
    QString text = tr("%1 of %2 tensors · %3 analysed").arg(m_proxy->rowCount()).arg(total).arg(m_store->doneCount() - failed);
    QString tip;
    if (failed > 0) {
        text += tr(" · <span style=\"color:#962828\">%1 not analysed</span>").arg(failed);
        tip = tr("Not analysed (the red rows):");
        for (const auto& [reason, n] : reasons)
            tip += QStringLiteral("\n• %1 × %2").arg(n).arg(QString::fromStdString(reason));
    }
    m_count->setText(text);
    m_count->setToolTip(tip);
}

bool StatsTableView::exportCsv(const QString& path) const
{
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly | QIODevice::Text);
    if (!writeCsv(*m_proxy, &buffer))
        return false;
    try {
        writeFileAtomically(path.toStdString(), std::string_view(bytes.constData(), size_t(bytes.size())));
    } catch (const Error&) {
        return false; // the old file, if any, is untouched
    }
    return true;
}

void StatsTableView::exportCsvDialog()
{
    QSettings settings;
    const QString dir = settings.value(QStringLiteral("exportDirectory")).toString();
    QString path = QFileDialog::getSaveFileName(this, tr("Export Statistics"), QDir(dir).filePath(QStringLiteral("statistics.csv")),
                                                tr("CSV (*.csv)"));
    if (path.isEmpty())
        return;
    if (QFileInfo(path).suffix().isEmpty())
        path += QStringLiteral(".csv");
    settings.setValue(QStringLiteral("exportDirectory"), QFileInfo(path).absolutePath());
    if (!exportCsv(path))
        QMessageBox::warning(this, tr("Export Statistics"), tr("Cannot write %1").arg(path));
}

void StatsTableView::selectTensor(const QString& name)
{
    const QModelIndex source = m_model->indexForTensor(name);
    const QModelIndex idx = m_proxy->mapFromSource(source);
    m_selecting = true;
    if (idx.isValid()) {
        m_table->selectionModel()->select(idx, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
        m_table->selectionModel()->setCurrentIndex(idx, QItemSelectionModel::NoUpdate);
        m_table->scrollTo(idx);
    } else {
        m_table->clearSelection();
    }
    m_selecting = false;
}

} // namespace qs
