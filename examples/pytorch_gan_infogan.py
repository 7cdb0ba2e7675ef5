"""PyTorch-GAN implementations/infogan/infogan.py on sklearn digits upsampled to 32x32, G channels halved.
Quickstart lines added: Doctor(...), doctor.step(...), print(doctor.report())."""
import itertools
import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

opt = parse_args(("healthy", "glr", "ddom", "fl", "sl"), default_steps=800)
torch.manual_seed(opt.seed); np.random.seed(opt.seed)
lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, code_dim, n_classes, img_size, channels, batch_size, width = 62, 2, 10, 32, 1, 64, 64
if opt.variant == "glr":
    lr_g = 0.002
if opt.variant == "ddom":
    lr_d = 0.002

def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        torch.nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        torch.nn.init.normal_(m.weight.data, 1.0, 0.02)
        torch.nn.init.constant_(m.bias.data, 0.0)

FloatTensor = torch.FloatTensor; LongTensor = torch.LongTensor
def to_categorical(y, num_columns):
    y_cat = np.zeros((y.shape[0], num_columns))
    y_cat[range(y.shape[0]), y] = 1.
    return FloatTensor(y_cat)

class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        input_dim = latent_dim + n_classes + code_dim
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(input_dim, width*self.init_size**2))
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
    def forward(self, noise, labels, code):
        gen_input = torch.cat((noise, labels, code), -1)
        out = self.l1(gen_input)
        out = out.view(out.shape[0], width, self.init_size, self.init_size)
        return self.conv_blocks(out)

class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        def discriminator_block(in_filters, out_filters, bn=True):
            block = [nn.Conv2d(in_filters, out_filters, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                block.append(nn.BatchNorm2d(out_filters, 0.8))
            return block
        self.conv_blocks = nn.Sequential(
            *discriminator_block(channels, 16, bn=False),
            *discriminator_block(16, 32),
            *discriminator_block(32, 64),
            *discriminator_block(64, 128),
        )
        ds_size = img_size // 2**4
        self.adv_layer = nn.Sequential(nn.Linear(128*ds_size**2, 1))
        self.aux_layer = nn.Sequential(nn.Linear(128*ds_size**2, n_classes), nn.Softmax())
        self.latent_layer = nn.Sequential(nn.Linear(128*ds_size**2, code_dim))
    def forward(self, img):
        out = self.conv_blocks(img)
        out = out.view(out.shape[0], -1)
        validity = self.adv_layer(out)
        label = self.aux_layer(out)
        latent_code = self.latent_layer(out)
        return validity, label, latent_code

adversarial_loss = torch.nn.MSELoss()
categorical_loss = torch.nn.CrossEntropyLoss()
continuous_loss = torch.nn.MSELoss()
lambda_cat = 1; lambda_con = 0.1
generator = Generator(); discriminator = Discriminator()
generator.apply(weights_init_normal); discriminator.apply(weights_init_normal)
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
optimizer_info = torch.optim.Adam(itertools.chain(generator.parameters(), discriminator.parameters()), lr=lr_g, betas=(b1, b2))

kw = {}
if opt.variant == "sl":
      # README: sample_latent may return a tuple of all of G's inputs (InfoGAN)
    kw["sample_latent"] = lambda n, gen: (torch.randn(n, latent_dim, generator=gen),
                                          torch.nn.functional.one_hot(torch.arange(n) % n_classes, n_classes).float(),
                                          torch.rand(n, code_dim, generator=gen) * 2 - 1)
doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D, log_dir=opt.out, **kw)
oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))
def oracle_g(z):
    n = z.shape[0]
    lab = torch.nn.functional.one_hot(torch.arange(n) % n_classes, n_classes).float()
    code = torch.rand(n, code_dim, generator=torch.Generator().manual_seed(7)) * 2 - 1
    return generator(z, lab, code)
def latent(n, gen):
    return torch.randn(n, latent_dim, generator=gen)

batches_done = 0; stop = False
for epoch in range(n_epochs):
    for i, (imgs, labels) in enumerate(dataloader):
        batch_size = imgs.shape[0]
        valid = FloatTensor(batch_size, 1).fill_(1.0)
        fake = FloatTensor(batch_size, 1).fill_(0.0)
        real_imgs = imgs.type(FloatTensor)
        labels = to_categorical(labels.numpy(), num_columns=n_classes)
        optimizer_G.zero_grad()
        z = FloatTensor(np.random.normal(0, 1, (batch_size, latent_dim)))
        label_input = to_categorical(np.random.randint(0, n_classes, batch_size), num_columns=n_classes)
        code_input = FloatTensor(np.random.uniform(-1, 1, (batch_size, code_dim)))
        gen_imgs = generator(z, label_input, code_input)
        fl = label_input
        validity, _, _ = discriminator(gen_imgs)
        g_loss = adversarial_loss(validity, valid)
        g_loss.backward(); optimizer_G.step()
        optimizer_D.zero_grad()
        real_pred, _, _ = discriminator(real_imgs)
        d_real_loss = adversarial_loss(real_pred, valid)
        fake_pred, _, _ = discriminator(gen_imgs.detach())
        d_fake_loss = adversarial_loss(fake_pred, fake)
        d_loss = (d_real_loss + d_fake_loss) / 2
        d_loss.backward(); optimizer_D.step()
        optimizer_info.zero_grad()
        sampled_labels = np.random.randint(0, n_classes, batch_size)
        gt_labels = LongTensor(sampled_labels)
        z = FloatTensor(np.random.normal(0, 1, (batch_size, latent_dim)))
        label_input = to_categorical(sampled_labels, num_columns=n_classes)
        code_input = FloatTensor(np.random.normal(-1, 1, (batch_size, code_dim)))
        gen_imgs2 = generator(z, label_input, code_input)
        _, pred_label, pred_code = discriminator(gen_imgs2)
        info_loss = lambda_cat * categorical_loss(pred_label, gt_labels) + lambda_con * continuous_loss(pred_code, code_input)
        info_loss.backward(); optimizer_info.step()
        if i % 10 == 0:
            print("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f] [info loss: %f]" % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item(), info_loss.item()))
        if opt.variant == "fl":   # as the warning suggests: pass fake_labels=
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs, fake_labels=fl)
        else:
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs)
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
