#include "widgets/tensorfilterproxy.h"

#include "widgets/tensortreemodel.h"

#include <QRegularExpression>

namespace qs {

TensorFilterProxy::TensorFilterProxy(QObject* parent) : QSortFilterProxyModel(parent)
{
    setRecursiveFilteringEnabled(true);
    setAutoAcceptChildRows(true);
    setFilterRole(TensorTreeModel::FilterTextRole);
    setSortRole(TensorTreeModel::SortRole);
    setFilterKeyColumn(TensorTreeModel::NameColumn);
    setSortCaseSensitivity(Qt::CaseInsensitive);
}

bool TensorFilterProxy::setFilterPattern(const QString& text)
{
    QRegularExpression re(text, QRegularExpression::CaseInsensitiveOption);
    const bool valid = re.isValid();
    if (!valid)
        re = QRegularExpression(QRegularExpression::escape(text), QRegularExpression::CaseInsensitiveOption);
    setFilterRegularExpression(re);
    return valid;
}

} // namespace qs
