#include "widgets/tensorbrowser.h"

#include "widgets/tensorfilterproxy.h"
#include "widgets/tensortreemodel.h"

#include <QHeaderView>
#include <QLineEdit>
#include <QTreeView>
#include <QVBoxLayout>

namespace qs {

namespace {
constexpr size_t expandAllLimit = 80; // tensors; larger models open with only the first groups expanded
}

TensorBrowser::TensorBrowser(QWidget* parent)
    : QWidget(parent), m_model(new TensorTreeModel(this)), m_proxy(new TensorFilterProxy(this)),
      m_filter(new QLineEdit(this)), m_view(new QTreeView(this))
{
    m_proxy->setSourceModel(m_model);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_filter->setPlaceholderText(
        tr("Filter tensors by name or role (regular expression, e.g. ffn_down|attn_q)"));
    m_filter->setClearButtonEnabled(true);
    connect(m_filter, &QLineEdit::textChanged, this, &TensorBrowser::applyFilter);
    layout->addWidget(m_filter);

    m_view->setObjectName(QStringLiteral("tensorTree"));
    m_view->setModel(m_proxy);
    m_view->setSortingEnabled(true);
    m_view->sortByColumn(-1, Qt::AscendingOrder); // file order until the user clicks a header
    m_view->setAlternatingRowColors(true);
    m_view->setUniformRowHeights(true);
    m_view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
    QHeaderView* header = m_view->header();
    header->setStretchLastSection(false);
    header->setSectionResizeMode(QHeaderView::Interactive);
    header->setSectionResizeMode(TensorTreeModel::NameColumn, QHeaderView::Stretch);
    header->setMinimumSectionSize(60);
    header->setSortIndicatorShown(true);
    layout->addWidget(m_view);
}

void TensorBrowser::setModel(std::shared_ptr<const Model> model)
{
    const size_t count = model ? model->tensors().size() : 0;
    m_model->setModel(std::move(model));
    if (count <= expandAllLimit) {
        m_view->expandAll();
    } else {
        m_view->collapseAll();
        for (int row = 0; row < qMin(2, m_proxy->rowCount()); ++row)
            m_view->expand(m_proxy->index(row, 0));
    }
    for (int c = TensorTreeModel::RoleColumn; c < TensorTreeModel::ColumnCount; ++c) {
        m_view->resizeColumnToContents(c);
        m_view->setColumnWidth(c, m_view->columnWidth(c) + 16);
    }
}

void TensorBrowser::focusFilter()
{
    m_filter->setFocus();
    m_filter->selectAll();
}

void TensorBrowser::applyFilter(const QString& text)
{
    const bool valid = m_proxy->setFilterPattern(text);
    m_filter->setToolTip(valid ? QString() : tr("Not a valid regular expression: matched literally"));
    if (!text.isEmpty())
        m_view->expandAll();
}

} // namespace qs
