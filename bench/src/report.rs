//! One line per figure as it is measured, and a Markdown table of all of them at the end.

/// One measured figure: a name such as `payments.postgres`, its values, and its ratio to
/// the baseline it is compared with.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub values: Vec<(String, String)>,
    pub ratio: Option<(String, String)>,
}

impl Figure {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            values: Vec::new(),
            ratio: None,
        }
    }

    pub fn value(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.values.push((key.into(), value.to_string()));
        self
    }

    /// A free-text part of the line (`p50=… p99=…` groups).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        if !text.is_empty() {
            self.values.push((String::new(), text));
        }
        self
    }

    pub fn ratio(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.ratio = Some((key.into(), value.into()));
        self
    }

    fn values_text(&self) -> String {
        self.values
            .iter()
            .map(|(key, value)| {
                if key.is_empty() {
                    value.clone()
                } else {
                    format!("{key}={value}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn line(&self) -> String {
        let mut line = format!("{} {}", self.name, self.values_text());
        if let Some((key, value)) = &self.ratio {
            line.push_str(&format!(" {key}={value}"));
        }
        line
    }
}

/// Every figure of the run, printed as it arrives.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    pub fn add(&mut self, figure: Figure) {
        println!("{}", figure.line());
        self.figures.push(figure);
    }

    pub fn markdown(&self) -> String {
        let mut table = String::from("| figure | result | ratio |\n| --- | --- | --- |\n");
        for figure in &self.figures {
            let ratio = figure
                .ratio
                .as_ref()
                .map_or_else(String::new, |(key, value)| format!("{key} = {value}"));
            table.push_str(&format!(
                "| {} | {} | {} |\n",
                figure.name,
                figure.values_text(),
                ratio
            ));
        }
        table
    }
}
