package console

// zhCN translates the console into Simplified Chinese. Keys are the
// English text; enum values appear by their short names (ONLINE, APPROVED).
var zhCN = map[string]string{
	// Navigation and titles.
	"Dashboard": "概览", "Terminals": "终端", "Terminal": "终端", "Merchants": "商户", "Merchant": "商户",
	"Config": "配置", "Alerts": "告警", "Audit": "审计", "Settlement": "日结", "Transactions": "交易",
	"Tokens": "令牌", "Rollout": "发布", "Rollouts": "发布", "Error": "错误", "Confirm": "确认",
	"Sign in": "登录", "Sign out": "退出", "Admin token": "管理令牌",
	"Your token stays on the server; the browser keeps only a session cookie.": "令牌只保存在服务器上，浏览器只保存会话 Cookie。",
	"Enter an admin token.":                                                                  "请输入管理令牌。",
	"That token is not valid.":                                                               "令牌无效。",
	"Too many failed sign-ins from this address; wait a minute.":                             "此地址登录失败次数过多，请稍后再试。",
	"Too many requests; wait a moment and try again.":                                        "请求过多，请稍后再试。",
	"The form has expired or did not come from this console. Reload the page and try again.": "表单已过期或并非来自本控制台。请刷新页面后重试。",
	"The server could not answer:":                                                           "服务器无法应答：",
	"Your role may not do this.":                                                             "您的角色无权执行此操作。",
	"Some fields need attention.":                                                            "部分字段需要修改。",
	"Token created. Copy it now: it is not shown again.":                                     "令牌已创建。请立即复制：它不会再次显示。",
	"Done:": "已完成：",
	// Dashboard.
	"Terminals by connectivity": "终端连接状态", "terminals": "台终端", "Open faults": "未解决故障",
	"merchant mismatches": "次商户不符", "Rollouts in progress": "进行中的发布",
	"Today's payments by merchant": "今日各商户交易", "since": "自", "Approvals": "批准", "Declines": "拒绝",
	"Approved amount": "批准金额", "No payments yet today.": "今日尚无交易。",
	"Too many transactions today: figures are partial.": "今日交易过多：数字不完整。",
	// Terminals.
	"Search": "搜索", "ID, serial or label": "编号、序列号或标签", "Store": "门店", "Stores": "门店", "State": "状态",
	"Connectivity": "连接", "any": "全部", "all": "全部", "Filter": "筛选", "Serial": "序列号", "Label": "标签",
	"Last heartbeat": "最近心跳", "No terminals match.": "没有符合条件的终端。", "Identity": "身份", "Device": "设备",
	"Identity version": "身份版本", "Registered": "注册时间", "Status": "状态", "Battery": "电量", "Paper": "纸张",
	"Network": "网络", "Firmware": "固件", "App": "应用", "Config version": "配置版本", "Offline queue": "离线队列",
	"Actions": "操作", "suspend": "停用", "reactivate": "恢复", "rebind": "重新绑定", "retire": "报废",
	"Command": "指令", "Commands": "指令", "Expires after": "有效期", "Send command": "发送指令", "Faults": "故障",
	"Time": "时间", "Component": "部件", "Code": "代码", "Severity": "严重程度", "Message": "信息", "None": "无",
	"Effective config": "生效配置", "Setting": "设置项", "Value": "值", "From": "从", "To": "至",
	"Not registered yet.": "尚未注册。", "Status history": "状态历史", "Result": "结果", "Recent transactions": "最近交易", "All transactions": "全部交易",
	"Really": "确定要", "terminal": "终端", "New merchant": "新商户", "New store": "新门店", "Reason": "原因", "Cancel": "取消",
	"command": "指令", "published": "已发布", "created": "已创建", "saved": "已保存", "revoked": "已吊销",
	// Transactions.
	"Amount": "金额", "Decision": "结果", "Card": "卡号", "Batch": "批次", "Kind": "类型", "reversed": "已冲正",
	// Merchants.
	"Merchant ID": "商户号", "Display name": "显示名称", "Legal name": "法定名称", "Currency": "币种",
	"Create": "创建", "Edit": "编辑", "Save": "保存", "Name": "名称", "Time zone": "时区", "Add store": "添加门店",
	// Config.
	"Show scope": "查看范围", "All empty: the global scope.": "全部留空即全局范围。", "Current layer": "当前配置层",
	"Nothing published at this scope.": "此范围尚未发布配置。", "Versions": "版本", "Version": "版本",
	"Description": "说明", "By": "操作者", "diff": "对比", "Roll back to this": "回滚到此版本", "Diff": "对比",
	"Before": "之前", "After": "之后", "Publish": "发布", "Receipt header": "小票抬头", "Receipt footer": "小票页脚",
	"Heartbeat interval": "心跳间隔", "Per-transaction limit": "单笔限额", "Daily limit": "每日限额",
	"Other settings (key=value per line)": "其他设置（每行一个 key=value）", "Stages (%)": "分阶段（%）",
	"Max failure ratio": "最大失败率", "Least time per stage": "每阶段最短时间", "Advance stages automatically": "自动推进阶段",
	"Scope": "范围", "Stage": "阶段", "Applied": "已应用", "included": "已纳入", "rejected": "已拒绝", "Progress": "进度",
	"Failure ratio": "失败率", "max": "上限", "Created": "创建时间", "Updated": "更新时间", "Config of this scope": "此范围的配置",
	"pause": "暂停", "resume": "继续", "advance": "推进", "abort": "中止并回滚",
	"a duration, e.g. 60s": "时长，例如 60s", "a duration, e.g. 720h": "时长，例如 720h",
	"an amount in major units, e.g. 250.00, with the currency set": "以主单位填写金额（例如 250.00），并填写币种",
	"one key=value per line": "每行一个 key=value", "not a version number": "不是版本号",
	// Audit and alerts.
	"Type": "类型", "Actor": "操作者", "Evidence": "证据",
	// Settlement.
	"Business date": "营业日", "Show": "查看", "Export CSV": "导出 CSV", "Totals": "合计", "Sales": "消费",
	"Refunds": "退货", "Reversals": "冲正", "Pre-authorizations": "预授权", "batches": "个批次", "out of balance": "个不平",
	"Too many batches: the list is partial; the totals are complete.": "批次过多：列表不完整，合计完整。",
	"By store": "按门店", "Batches": "批次", "Server sales": "服务器消费", "Terminal sales": "终端消费",
	"Opened": "开批时间", "Closed": "结批时间",
	// Tokens.
	"Role": "角色", "Expires": "过期时间", "Revoke": "吊销", "New token": "新令牌", "Valid for": "有效期",
	// Enum values.
	"ONLINE": "在线", "STALE": "心跳超时", "OFFLINE": "离线", "NEVER_SEEN": "从未上线",
	"PROVISIONED": "已预置", "ACTIVE": "正常", "SUSPENDED": "已停用", "RETIRED": "已报废",
	"RUNNING": "进行中", "PAUSED": "已暂停", "HALTED": "已中断", "ABORTED": "已中止", "COMPLETED": "已完成", "SUPERSEDED": "已被取代",
	"APPROVED": "批准", "DECLINED": "拒绝", "SALE": "消费", "PREAUTH": "预授权", "REFUND": "退货",
	"OPEN": "未结", "CLOSED": "已平", "OUT_OF_BALANCE": "不平",
	"PENDING": "待下发", "DELIVERED": "已下发", "SUCCEEDED": "成功", "FAILED": "失败", "EXPIRED": "已过期",
	"REBOOT": "重启", "UPLOAD_LOGS": "上传日志", "RESYNC_CONFIG": "重新同步配置", "LOCK": "锁定",
	"AUDITOR": "审计员", "OPERATOR": "操作员", "ADMIN": "管理员",
	"OK": "正常", "LOW": "不足", "OUT": "缺纸", "WIFI": "Wi-Fi", "CELLULAR": "蜂窝网络", "ETHERNET": "以太网",
	"LAYER": "配置层", "DEFAULT": "默认值",
	"MERCHANT_MISMATCH": "商户不符", "BATCH_OUT_OF_BALANCE": "结算不平", "IDENTITY_COLLISION": "身份冲突",
	"AUTH_FAILURE": "认证失败", "PERMISSION_DENIED": "权限不足", "REGISTRATION_REFUSED": "注册被拒",
	"TERMINAL_SUSPENDED": "终端停用", "TERMINAL_REGISTERED": "终端注册", "CONFIG_PUBLISHED": "配置发布",
}
