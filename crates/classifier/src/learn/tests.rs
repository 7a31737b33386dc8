//! Learning through a real SQLite store in a temporary directory.

use super::*;

fn spam(n: usize) -> String {
    format!(
        "From: Deals <deals{n}@cheap-pills.example>\nSubject: Cheap pills now {n}\n\n\
         Buy cheap pills online, best price guaranteed, order now at http://pills.example/{n}\n"
    )
}

fn ham(n: usize) -> String {
    format!(
        "From: Alice <alice@work.example>\nSubject: Meeting notes {n}\n\n\
         Hi team, attached are the notes from the meeting about the release schedule {n}.\n"
    )
}

fn settings() -> Settings {
    Settings { min_learned_spam: 3, min_learned_ham: 3, ..Settings::default() }
}

#[tokio::test]
async fn learned_weights_persist_and_drive_classification() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config::StoreConfig::default()).await.unwrap();
    let learner = Learner::new(store.clone(), Arc::new(Classifier::new(settings())));
    let (spams, hams): (Vec<String>, Vec<String>) = ((0..4).map(spam).collect(), (0..4).map(ham).collect());
    let mut batch: Vec<Sample> =
        spams.iter().map(|m| Sample { raw: m.as_bytes(), fingerprint: None, class: Class::Spam }).collect();
    batch.extend(hams.iter().map(|m| Sample { raw: m.as_bytes(), fingerprint: None, class: Class::Ham }));
    let out = learner.learn_batch(&batch).await.unwrap();
    assert!(out.iter().all(|o| *o == Learned::Added));
    assert_eq!(learner.classifier().learned(), (4, 4));
    store.close().await;

    // A fresh process: the weights come back from the store, exactly as they were in memory.
    let store = Store::open(dir.path(), &config::StoreConfig::default()).await.unwrap();
    let loaded = load(&store, settings()).await.unwrap();
    assert_eq!(loaded.learned(), (4, 4));
    let limits = message::MessageLimits::default();
    let p = |c: &Classifier, raw: &str| c.classify(&message::parse(raw.as_bytes(), &limits)).unwrap();
    for m in [spam(9), ham(9)] {
        assert_eq!(p(&loaded, &m), p(learner.classifier(), &m), "memory and store agree");
    }
    assert!(p(&loaded, &spam(9)).probability > 0.95, "{:?}", p(&loaded, &spam(9)));
    assert!(p(&loaded, &ham(9)).probability < 0.05, "{:?}", p(&loaded, &ham(9)));
}

#[tokio::test]
async fn relearning_is_idempotent_and_moving_flips_the_verdict() {
    let store = Store::in_memory().await.unwrap();
    let learner = Learner::new(store.clone(), Arc::new(Classifier::new(settings())));
    for n in 0..3 {
        for (raw, class) in [(spam(n), Class::Spam), (ham(n), Class::Ham)] {
            learner.learn(raw.as_bytes(), crate::fingerprint(raw.as_bytes()), class).await.unwrap();
        }
    }
    let odd = "From: Bob <bob@odd.example>\nSubject: quarterly figures\n\nquarterly figures attached\n";
    let fp = crate::fingerprint(odd.as_bytes());
    assert_eq!(learner.learn(odd.as_bytes(), fp, Class::Spam).await.unwrap(), Learned::Added);
    assert_eq!(learner.learn(odd.as_bytes(), fp, Class::Spam).await.unwrap(), Learned::AlreadyLearned);
    assert_eq!(learner.classifier().learned(), (4, 3));
    let view = message::parse(odd.as_bytes(), &message::MessageLimits::default());
    assert!(learner.classifier().classify(&view).unwrap().probability > 0.6);

    // Someone says it is not spam after all.
    assert_eq!(learner.learn(odd.as_bytes(), fp, Class::Ham).await.unwrap(), Learned::Moved);
    assert_eq!(learner.classifier().learned(), (3, 4));
    assert_eq!(store.classifier_totals().await.unwrap(), store::Totals { spam: 3, ham: 4 });
    assert!(learner.classifier().classify(&view).unwrap().probability < 0.4);
    let reloaded = load(&store, settings()).await.unwrap();
    assert_eq!(reloaded.classify(&view), learner.classifier().classify(&view), "memory and store agree");
    // Learning it as ham again changes nothing, in memory or in the store.
    let before = learner.classifier().classify(&view);
    assert_eq!(learner.learn(odd.as_bytes(), fp, Class::Ham).await.unwrap(), Learned::AlreadyLearned);
    assert_eq!(learner.classifier().classify(&view), before);
    assert_eq!(load(&store, settings()).await.unwrap().classify(&view), before);
}

#[tokio::test]
async fn a_learner_started_on_a_loaded_model_adds_to_it() {
    let store = Store::in_memory().await.unwrap();
    let first = Learner::new(store.clone(), Arc::new(Classifier::new(settings())));
    for n in 0..3 {
        first.learn(spam(n).as_bytes(), crate::fingerprint(spam(n).as_bytes()), Class::Spam).await.unwrap();
        first.learn(ham(n).as_bytes(), crate::fingerprint(ham(n).as_bytes()), Class::Ham).await.unwrap();
    }
    let second = Learner::new(store.clone(), Arc::new(load(&store, settings()).await.unwrap()));
    let m = spam(3);
    second.learn(m.as_bytes(), crate::fingerprint(m.as_bytes()), Class::Spam).await.unwrap();
    let view = message::parse(m.as_bytes(), &message::MessageLimits::default());
    let reloaded = load(&store, settings()).await.unwrap();
    assert_eq!(reloaded.classify(&view), second.classifier().classify(&view));
    assert_eq!(reloaded.learned(), (4, 3));
}

#[tokio::test]
async fn learning_in_two_runs_is_learning_in_one() {
    fn samples(msgs: &[String], class: Class) -> Vec<Sample<'_>> {
        msgs.iter().map(|m| Sample { raw: m.as_bytes(), fingerprint: None, class }).collect()
    }
    // `portcullis learn --spam DIR` then `portcullis learn --ham DIR`: two processes, one store.
    let (spams, hams): (Vec<String>, Vec<String>) = ((0..4).map(spam).collect(), (0..4).map(ham).collect());
    let two_runs = Store::in_memory().await.unwrap();
    for (msgs, class) in [(&spams, Class::Spam), (&hams, Class::Ham)] {
        let run = Learner::open(two_runs.clone(), settings()).await.unwrap();
        run.learn_batch(&samples(msgs, class)).await.unwrap();
    }
    let one_run = Learner::open(Store::in_memory().await.unwrap(), settings()).await.unwrap();
    one_run.learn_batch(&samples(&spams, Class::Spam)).await.unwrap();
    one_run.learn_batch(&samples(&hams, Class::Ham)).await.unwrap();
    let stored = load(&two_runs, settings()).await.unwrap();
    let limits = message::MessageLimits::default();
    for m in [spam(9), ham(9)] {
        let view = message::parse(m.as_bytes(), &limits);
        assert_eq!(stored.classify(&view), one_run.classifier().classify(&view), "{m}");
    }
}

#[tokio::test]
async fn a_model_of_another_feature_version_is_not_used_nor_learned_into_until_reset() {
    let store = Store::in_memory().await.unwrap();
    // A model another build learned: enough of each class, and a weight on a feature of this spam.
    let other = FEATURE_VERSION + 1;
    store.classifier_reset(other).await.unwrap();
    let m = spam(1);
    let view = message::parse(m.as_bytes(), &message::MessageLimits::default());
    let items: Vec<LearnItem> = (0..6u8)
        .map(|n| LearnItem {
            fingerprint: [n; 32],
            class: if n < 3 { store::Class::Spam } else { store::Class::Ham },
            features: vec![u32::from(n) + 1],
        })
        .collect();
    let feature = Classifier::new(settings()).features(&view)[0];
    store.classifier_learn(&items, 1, 10, other, |_, _| vec![(feature, 50.0)]).await.unwrap();

    let loaded = load(&store, settings()).await.unwrap();
    let stale = VersionMismatch { stored: other, current: FEATURE_VERSION };
    assert_eq!(loaded.stale(), Some(stale));
    assert_eq!(loaded.learned(), (3, 3), "the totals are the store's");
    assert!(!loaded.ready(), "enough is learned, but not in these features");
    assert_eq!(loaded.classify(&view), None);
    assert_eq!(loaded.classify_features(&[feature]).score, 0.0, "the stale weights were not read");

    let learner = Learner::new(store.clone(), Arc::new(loaded));
    let refused =
        learner.learn(m.as_bytes(), crate::fingerprint(m.as_bytes()), Class::Spam).await.unwrap_err();
    assert!(matches!(refused, LearnError::Stale(s) if s == stale), "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("version {other}"))
            && text.contains(&format!("version {FEATURE_VERSION}"))
            && text.contains("portcullis learn --reset"),
        "{text}"
    );
    assert_eq!(
        store.classifier_totals().await.unwrap(),
        store::Totals { spam: 3, ham: 3 },
        "nothing learned"
    );

    let cleared = reset(&store).await.unwrap();
    assert_eq!(
        (cleared.totals, cleared.learned, cleared.feature_version),
        (store::Totals { spam: 3, ham: 3 }, 6, Some(other))
    );
    reload(learner.classifier(), &store).await.unwrap();
    assert_eq!((learner.classifier().stale(), learner.classifier().learned()), (None, (0, 0)));
    for n in 0..3 {
        for (raw, class) in [(spam(n), Class::Spam), (ham(n), Class::Ham)] {
            learner.learn(raw.as_bytes(), crate::fingerprint(raw.as_bytes()), class).await.unwrap();
        }
    }
    assert!(learner.classifier().classify(&view).unwrap().probability > 0.5);
    assert_eq!(store.classifier_feature_version().await.unwrap(), Some(FEATURE_VERSION));
}
