//! The lists records are drawn from: postcode areas, forenames, surnames,
//! streets, schools and services, each with its source where it has one.

pub(super) const INWARD_LETTERS: &[u8; 20] = b"ABDEFGHJLNPQRSTUWXYZ";

#[rustfmt::skip]
pub(super) const LONDON_AREAS: &[&str] = &[
    "E", "N", "NW", "SE", "SW", "W", "EC", "WC", "BR", "CR", "DA", "EN", "HA", "IG", "KT", "RM",
    "SM", "TW", "UB",
];

#[rustfmt::skip]
pub(super) const AREAS: &[&str] = &[
    "TS", "NE", "SR", "DH", "DL", "LS", "BD", "HX", "HD", "WF", "S", "DN", "HU", "YO", "M", "OL",
    "BL", "WN", "WA", "L", "CH", "PR", "BB", "LA", "CA", "B", "WV", "WS", "DY", "CV", "ST", "DE",
    "NG", "LE", "LN", "PE", "NN", "MK", "LU", "SG", "AL", "HP", "OX", "RG", "SL", "GU", "BN", "RH",
    "TN", "ME", "CT", "CM", "CO", "IP", "NR", "CB", "SS", "BS", "BA", "GL", "SN", "SP", "SO", "PO",
    "BH", "DT", "EX", "TQ", "PL", "TR", "TA", "HR", "WR", "TF", "SY",
];

/// Popular girls' names (ONS, England and Wales), most popular first.
#[rustfmt::skip]
pub(super) const GIRLS: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella",
    "Evelyn", "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda", "Maya",
    "Sophie", "Alice", "Emilia", "Isabelle", "Ruby", "Luna", "Maisie", "Aria", "Penelope", "Mila",
    "Bonnie", "Eva", "Hallie", "Eliza", "Ada", "Violet", "Esme", "Arabella", "Imogen", "Jessica",
    "Delilah", "Thea", "Chloe", "Layla", "Hannah", "Holly", "Ellie", "Lucy", "Amber", "Zara",
    "Aisha", "Maryam", "Fatima",
];

/// Popular boys' names (ONS, England and Wales), most popular first.
#[rustfmt::skip]
pub(super) const BOYS: &[&str] = &[
    "Muhammad", "Noah", "Oliver", "George", "Leo", "Arthur", "Oscar", "Theodore", "Theo",
    "Freddie", "Henry", "Archie", "Jack", "Alfie", "Charlie", "Thomas", "Jacob", "Teddy", "Finley",
    "Arlo", "Isaac", "Tommy", "Lucas", "Albie", "Harry", "Rory", "Ezra", "Jude", "Edward",
    "Reggie", "Hugo", "Joshua", "William", "Mohammed", "Louie", "Max", "Elijah", "Roman", "Louis",
    "Ronnie", "Jaxon", "Toby", "Ethan", "Harrison", "Sonny", "Frederick", "Dylan", "James",
    "Daniel", "Samuel", "Joseph", "Benjamin", "Logan", "Riley", "Mason", "Adam", "Yusuf",
    "Ibrahim", "Zain", "Kai",
];

/// Forenames of parents and practitioners.
#[rustfmt::skip]
pub(super) const WOMEN: &[&str] = &[
    "Sarah", "Emma", "Laura", "Rebecca", "Gemma", "Claire", "Rachel", "Hannah", "Amy", "Kelly",
    "Nicola", "Lisa", "Louise", "Victoria", "Stacey", "Jodie", "Natalie", "Samantha", "Katie",
    "Charlotte", "Jennifer", "Zoe", "Nadia", "Priya",
];
#[rustfmt::skip]
pub(super) const MEN: &[&str] = &[
    "David", "James", "Daniel", "Christopher", "Matthew", "Michael", "Andrew", "Mark", "Paul",
    "Richard", "Stephen", "Thomas", "Robert", "Lee", "Craig", "Ryan", "Adam", "Ben", "Jamie",
    "Liam", "Gareth", "Imran", "Ravi", "Tariq",
];

/// Surnames, commonest first; the rarer spelling of each variant pair (Smyth, Thomson, Browne,
/// Grey, Reed, Read, Philips, Mathews, McDonald, OBrien) comes late.
#[rustfmt::skip]
pub(super) const SURNAMES: &[&str] = &[
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
    "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price",
    "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey",
    "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall",
    "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster", "Chapman",
    "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews",
    "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell",
    "Barker", "Fisher", "Stevens", "Jenkins", "Murray", "Dixon", "Harvey", "Graham", "Pearson",
    "Ahmed", "Fletcher", "Walsh", "Kaur", "Gibson", "Howard", "Andrews", "Stewart", "Elliott",
    "Reynolds", "Saunders", "Payne", "Fox", "Ford", "Pearce", "Day", "Brooks", "West", "Lawrence",
    "Cole", "Atkinson", "Bradley", "Spencer", "Gill", "Dawson", "Ball", "Burton", "O'Brien",
    "Watts", "Rose", "Booth", "Perry", "Reid", "Macdonald", "Chowdhury", "Nowak", "Okafor",
    "Smyth", "Thomson", "Browne", "Grey", "Reed", "Read", "Philips", "Mathews", "McDonald",
    "OBrien",
];

/// Street names, also the names of schools, practices and health centres.
#[rustfmt::skip]
pub(super) const STREETS: &[&str] = &[
    "Church", "Station", "Victoria", "Park", "Mill", "Queen's", "King's", "Albert", "Manor",
    "Grange", "Oakfield", "Meadow", "Highfield", "Springfield", "Greenfield", "Fairfield",
    "Hillside", "Beech", "Elm", "Willow", "Orchard", "Brook", "Woodland", "Ashgrove", "Holly",
    "Cedar", "Chestnut", "Rosewood", "Heather", "Moorland", "Riverside", "Castle", "Abbey",
    "Priory", "Chapel", "Market", "Windmill", "Kingsway", "Northfield", "Westfield",
];

#[rustfmt::skip]
pub(super) const STREET_SUFFIXES: &[&str] =
    &["Road", "Street", "Close", "Avenue", "Lane", "Drive", "Way", "Crescent", "Gardens"];

#[rustfmt::skip]
pub(super) const PRIMARY_SCHOOLS: &[&str] = &[
    "Primary School", "Primary Academy", "Community Primary School",
    "Church of England Primary School", "Catholic Primary School", "Infant and Junior School",
];

#[rustfmt::skip]
pub(super) const SECONDARY_SCHOOLS: &[&str] =
    &["Academy", "High School", "School", "Community College", "Catholic High School"];

#[rustfmt::skip]
pub(super) const COLLEGES: &[&str] = &["Sixth Form College", "College", "College of Further Education"];

#[rustfmt::skip]
pub(super) const TARGETED_SERVICES: &[&str] = &[
    "Early Help Family Support", "Speech and Language Therapy", "Youth Justice Service",
    "Special Educational Needs Support Service", "Young Carers Service",
    "Educational Psychology Service", "Children's Occupational Therapy",
];

#[rustfmt::skip]
pub(super) const SENSITIVE_SERVICES: &[&str] = &[
    "Child and Adolescent Mental Health Service", "Young People's Sexual Health Clinic",
    "Young People's Substance Misuse Service", "Domestic Abuse Support for Young People",
];
