"""PyTorch-GAN implementations/acgan/acgan.py on sklearn digits upsampled to 32x32, G channels halved.
Quickstart lines added: Doctor(...), doctor.step(..., labels=, fake_labels=), print(doctor.report())."""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

opt = parse_args(("healthy", "glr", "ddom"), default_steps=800)
torch.manual_seed(opt.seed); np.random.seed(opt.seed)
lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, n_classes, img_size, channels, batch_size, width = 100, 10, 32, 1, 64, 64
if opt.variant == "glr":
    lr_g = 0.002
if opt.variant == "ddom":
    lr_d = 0.002

def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        m.weight.data.normal_(0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)

class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.label_emb = nn.Embedding(n_classes, latent_dim)
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, width*self.init_size**2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, stride=1, padding=1),
            nn.BatchNorm2d(width, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, stride=1, padding=1),
            nn.BatchNorm2d(width // 2, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, channels, 3, stride=1, padding=1),
            nn.Tanh()
        )
    def forward(self, noise, labels):
        gen_input = torch.mul(self.label_emb(labels), noise)
        out = self.l1(gen_input)
        out = out.view(out.shape[0], width, self.init_size, self.init_size)
        return self.conv_blocks(out)

class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        def discriminator_block(in_filters, out_filters, bn):
            block = [nn.Conv2d(in_filters, out_filters, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                block.append(nn.BatchNorm2d(out_filters, 0.8))
            return block
        layers = []
        in_filters = channels
        for out_filters, bn in [(16, False), (32, True), (64, True), (128, False)]:
            layers.extend(discriminator_block(in_filters, out_filters, bn))
            in_filters = out_filters
        self.conv_blocks = nn.Sequential(*layers)
        ds_size = img_size // 2**4
        self.adv_layer = nn.Sequential(nn.Linear(out_filters*ds_size**2, 1), nn.Sigmoid())
        self.aux_layer = nn.Sequential(nn.Linear(out_filters*ds_size**2, n_classes), nn.Softmax())
    def forward(self, img):
        out = self.conv_blocks(img)
        out = out.view(out.shape[0], -1)
        validity = self.adv_layer(out)
        label = self.aux_layer(out)
        return validity, label

adversarial_loss = torch.nn.BCELoss()
auxiliary_loss = torch.nn.CrossEntropyLoss()
generator = Generator(); discriminator = Discriminator()
generator.apply(weights_init_normal); discriminator.apply(weights_init_normal)
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
FloatTensor = torch.FloatTensor; LongTensor = torch.LongTensor

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D, log_dir=opt.out)
oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))
def oracle_g(z):
    return generator(z, torch.arange(z.shape[0]) % n_classes)
def latent(n, gen):
    return torch.randn(n, latent_dim, generator=gen)

batches_done = 0; stop = False
for epoch in range(n_epochs):
    for i, (imgs, labels) in enumerate(dataloader):
        batch_size = imgs.shape[0]
        valid = FloatTensor(batch_size, 1).fill_(1.0)
        fake = FloatTensor(batch_size, 1).fill_(0.0)
        real_imgs = imgs.type(FloatTensor); labels = labels.type(LongTensor)
        optimizer_G.zero_grad()
        z = FloatTensor(np.random.normal(0, 1, (batch_size, latent_dim)))
        gen_labels = LongTensor(np.random.randint(0, n_classes, batch_size))
        gen_imgs = generator(z, gen_labels)
        validity, pred_label = discriminator(gen_imgs)
        g_loss = 0.5 * (adversarial_loss(validity, valid) + auxiliary_loss(pred_label, gen_labels))
        g_loss.backward(); optimizer_G.step()
        optimizer_D.zero_grad()
        real_pred, real_aux = discriminator(real_imgs)
        d_real_loss = (adversarial_loss(real_pred, valid) + auxiliary_loss(real_aux, labels)) / 2
        fake_pred, fake_aux = discriminator(gen_imgs.detach())
        d_fake_loss = (adversarial_loss(fake_pred, fake) + auxiliary_loss(fake_aux, gen_labels)) / 2
        d_loss = (d_real_loss + d_fake_loss) / 2
        pred = np.concatenate([real_aux.data.cpu().numpy(), fake_aux.data.cpu().numpy()], axis=0)
        gt = np.concatenate([labels.data.cpu().numpy(), gen_labels.data.cpu().numpy()], axis=0)
        d_acc = np.mean(np.argmax(pred, axis=1) == gt)
        d_loss.backward(); optimizer_D.step()
        if i % 10 == 0:
            print("[Epoch %d/%d] [Batch %d/%d] [D loss: %f, acc: %d%%] [G loss: %f]" % (epoch, n_epochs, i, len(dataloader), d_loss.item(), 100 * d_acc, g_loss.item()))
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs, labels=labels, fake_labels=gen_labels)
        batches_done = epoch * len(dataloader) + i
        if batches_done % oracle_every == 0 or batches_done == opt.steps - 1:
            oracle.sample(oracle_g, latent, batches_done)
        if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
            print("NaN loss, stopping", file=sys.stderr); stop = True
        if stop or batches_done + 1 >= opt.steps:
            stop = True; break
    if stop:
        break
oracle.sample_last(oracle_g, latent, batches_done)
report = doctor.report()
print(report)
print("disabled_probes:", doctor.disabled_probes)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, batches_done, {"disabled_probes": str(doctor.disabled_probes)})
