"""The Chinese names of the domain's codes (DOMAIN.md), for what people read: the router's
explanations, the workbench's pages, the texts a 12345 hotline shows its callers."""

from __future__ import annotations

from contracts.enums import Category, Channel, Department, Risk, Tier

CATEGORY_ZH: dict[Category, str] = {
    Category.MARRIAGE_FAMILY: "婚恋家庭",
    Category.NEIGHBOR: "邻里纠纷",
    Category.LAND_RESOURCE: "土地山林水事",
    Category.LAND_ACQUISITION: "征地拆迁",
    Category.LABOR: "劳动争议/欠薪",
    Category.CONSTRUCTION: "工程建设",
    Category.DEBT_FINANCE: "金融借贷/民间债务",
    Category.CONSUMER_COMMERCIAL: "消费/商事",
    Category.TRAFFIC_ACCIDENT: "交通事故",
    Category.MEDICAL: "医疗纠纷",
    Category.PROPERTY_MANAGEMENT: "物业纠纷",
    Category.CAMPUS: "校园纠纷",
    Category.TOURISM: "旅游纠纷",
    Category.ENVIRONMENT: "环境污染",
    Category.OTHER: "其他",
}

DEPARTMENT_ZH: dict[Department, str] = {
    Department.VILLAGE_MEDIATION: "村(居)人民调解委员会",
    Department.JUDICIAL_OFFICE: "司法所",
    Department.POLICE_STATION: "派出所",
    Department.TRAFFIC_POLICE: "交警",
    Department.COURT: "人民法院诉调对接",
    Department.PETITION_OFFICE: "信访局",
    Department.HR_SOCIAL_SECURITY: "人社局",
    Department.WOMENS_FEDERATION: "妇联",
    Department.CIVIL_AFFAIRS: "民政局",
    Department.NATURAL_RESOURCES: "自然资源局",
    Department.AGRICULTURE_RURAL: "农业农村局",
    Department.HOUSING_CONSTRUCTION: "住建局",
    Department.HEALTH: "卫健委",
    Department.MARKET_REGULATION: "市场监管局",
    Department.EDUCATION: "教育局",
    Department.CULTURE_TOURISM: "文旅局",
    Department.ECOLOGY_ENVIRONMENT: "生态环境局",
}

TIER_ZH: dict[Tier, str] = {Tier.VILLAGE: "村级", Tier.TOWN: "乡镇级", Tier.COUNTY: "县级"}

RISK_ZH: dict[Risk, str] = {
    Risk.RED: "红色", Risk.ORANGE: "橙色", Risk.YELLOW: "黄色", Risk.BLUE: "蓝色",
}

CHANNEL_ZH: dict[Channel, str] = {
    Channel.HOTLINE_12345: "12345热线分类",
    Channel.GRID: "网格事件类型",
    Channel.POLICE: "警情纠纷类型",
    Channel.COURT: "案由",
    Channel.PETITION: "信访分类",
    Channel.WALK_IN: "来访登记分类",
    Channel.OPEN311: "Open311服务类型",
}
